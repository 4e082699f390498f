import os

import pytest
import torch

# Without a GPU the Triton kernels run in the interpreter; it must be chosen before triton is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
from hypothesis import settings

# Timing varies on a loaded 2-core CI machine (first calls compile and warm caches).
settings.register_profile("sanawm", deadline=None, max_examples=40)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "sanawm"))

# Two cores, and pytest-xdist already runs two workers.
torch.set_num_threads(1)
# The same for the processes tests start (benchmarks, the CLI): OpenMP threads that spin beside the other
# worker's busy core run many times slower (model.threads), which once took a 15 s benchmark past its 120 s limit.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def scalar_inductor_kernels():
    """Inductor's C++ kernels without SIMD: they compile in about 60% of the time of the vectorised ones
    (cold, 64 s against 104 s for the streaming pass on a 2-core CPU). For the tests of what compiles and
    when; `test_compiled.py`'s first test keeps the vectorised kernels that ``compile=True`` gives users.
    No vector ISA is 1 bit wide, so inductor picks none (``cpp.vec_isa_ok`` would not do: inductor caches
    the ISAs it found, with that setting, for the whole process)."""
    import torch._inductor.config

    with torch._inductor.config.patch({"cpp.simdlen": 1}):
        yield


@pytest.fixture
def quiet_untrained():
    """Silence the warning of untrained worlds (the ``tiny`` worlds most env tests run)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="no trained")
        yield


@pytest.fixture
def re10k_folder():
    """``make(root, n=4, h=12, w=16, name="seq0")``: a RealEstate10K-style sequence under ``root`` (a
    camera file and a folder of n grey PNG frames named by timestamp, random poses); returns its cameras."""
    import numpy as np
    from PIL import Image

    from model.camera import Re10kCameras, se3, so3_exp, write_re10k_cameras

    def make(root, n=4, h=12, w=16, name="seq0"):
        g = torch.Generator().manual_seed(0)
        c2w = torch.stack([se3(so3_exp(torch.randn(3, generator=g, dtype=torch.float64) * 0.1), torch.randn(3, generator=g, dtype=torch.float64))
                           for _ in range(n)])
        cams = Re10kCameras("https://youtu.be/x", torch.arange(n) * 1000 + 7, torch.tensor([[0.6, 0.8, 0.5, 0.5]] * n, dtype=torch.float64), c2w)
        write_re10k_cameras(root / f"{name}.txt", cams)
        (root / name).mkdir()
        for i, ts in enumerate(cams.timestamps.tolist()):
            Image.fromarray(np.full((h, w, 3), i * 40 % 256, np.uint8)).save(root / name / f"{ts}.png")
        return cams

    return make


@pytest.fixture
def meta_device(monkeypatch):
    """Run models on the ``meta`` device, which (like CUDA) refuses to mix its tensors with CPU tensors
    other than scalars, so a pass that builds a table on the CPU fails without a GPU. Meta tensors
    hold no values: ``torch.autocast`` (no meta backend) is a no-op there, and reading a value
    (``bool``, ``float``, ``item``: finiteness checks, logged losses) gives a placeholder."""
    autocast = torch.autocast

    class Autocast(autocast):
        def __init__(self, device_type: str, *args, **kwargs):
            self.meta = device_type == "meta"
            if not self.meta:
                super().__init__(device_type, *args, **kwargs)

        def __enter__(self):
            return None if self.meta else super().__enter__()

        def __exit__(self, *exc):
            return None if self.meta else super().__exit__(*exc)

    monkeypatch.setattr(torch, "autocast", Autocast)
    for name, placeholder in (("__bool__", True), ("__float__", 0.0), ("item", 0.0)):
        read = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, _read=read, _p=placeholder: _p if self.is_meta else _read(self))
    return torch.device("meta")
