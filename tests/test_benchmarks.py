"""The benchmark scripts run and write what they promise (speed itself is not asserted here)."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from floor import CountFlops, RecordProducts, replay
from gdn import parse_size, scan_cost


def test_gdn_cost_counts_paper_size():
    # The paper's GDN block, bf16: 2 scans x 6 S D (D + 1) FLOPs per frame and head; 5 input streams read.
    flops, n_bytes = scan_cost((1, 20, 121, 880, 112), 2, backward=False)
    assert flops == 20 * 121 * 2 * 6 * 880 * 112 * 113
    assert n_bytes == 20 * 121 * ((880 * (5 * 112 + 1) + 1) * 2 + 880 * 112 * 4)
    flops_b, bytes_b = scan_cost((1, 20, 121, 880, 112), 2, backward=True)
    assert flops_b == 3 * flops and bytes_b > 2 * n_bytes


def test_replayed_products_do_the_arithmetic_of_the_call():
    # A forward and backward with a broadcast bias, a composite matmul and a depthwise conv: the
    # replay must dispatch the same products on the same shapes, so its counted FLOPs are the call's.
    torch.manual_seed(0)
    lin, conv = torch.nn.Linear(8, 6), torch.nn.Conv2d(6, 6, 3, padding=1, groups=6)
    x = torch.randn(2, 5, 8, requires_grad=True)

    def call():
        h = lin(x)
        return conv((h @ h.transpose(1, 2))[:, None].expand(2, 6, 5, 5)).square().sum().backward()

    with CountFlops() as counted:
        call()
    with RecordProducts() as recorder:
        call()
    with CountFlops() as replayed:
        replay(recorder.calls)()
    assert replayed.flops == counted.flops and counted.total > 0
    assert len(recorder.calls) == 8  # addmm, bmm, conv; backward: conv, 2 bmm, 2 mm (the weight and the input of lin)


def test_gdn_size_errors_name_the_format():
    with pytest.raises(argparse.ArgumentTypeError, match="B,H,T,S,D"):
        parse_size("1,2,3")


def test_gdn_benchmark_writes_table_and_json(tmp_path):
    out = tmp_path / "gdn.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gdn.py"), "--sizes", "1,2,3,8,4", "--repeats", "1",
                          "--out", str(out)], cwd=ROOT, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "/ floor" in run.stdout
    data = json.loads(out.read_text())
    assert data["ceilings"]["bandwidth_bytes_per_s"] > 0 and data["ceilings"]["matmul_flops_per_s"] > 0
    assert {(r["pass"], r["variant"]) for r in data["results"]} == {(p, v) for p in ("fwd", "fwd+bwd") for v in ("reference", "transitions")}
    assert all(r["floor_ms"] > 0 and r["over_floor"] > 0 and r["speedup_vs_reference"] > 0 for r in data["results"])


def test_env_step_rejects_long_runs_too_short_for_the_latency_window():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "env_step.py"), "--long-steps", "12"],
                         check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--long-steps and --softmax-steps must be >= 15" in run.stderr


def test_env_step_throughput_rows_name_the_precision_the_worlds_ran_in():
    from env_step import throughput

    row = throughput(2, 1, 1, "hybrid", "bfloat16")
    assert row["dtype"] == "bfloat16" and row["num_envs"] == 2 and row["frames_per_s"] > 0


def test_train_benchmark_writes_table_and_json(tmp_path):
    out = tmp_path / "train.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train.py"), "--world", "tiny", "--size", "32", "--clips", "2",
                          "--steps", "2", "--dit", "tiny", "--dit-grid", "4", "--dit-frames", "4", "--repeats", "2", "--no-compile",
                          "--out", str(out)],
                         cwd=ROOT, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "samples/s" in run.stdout
    data = json.loads(out.read_text())
    stages = ["vae", "latents", "bidirectional", "chunk_causal", "ode", "self_forcing", "refiner"]
    assert [r["stage"] for r in data["stages"]] == stages
    assert all(r["samples_per_s"] > 0 for r in data["stages"])
    assert all(r["timed_steps"] == 1 for r in data["stages"] if r["stage"] != "latents")
    try:
        import diffusers  # noqa: F401
    except ImportError:
        assert data["dit_step"] is None and "skipped" in run.stdout
        return
    dit = data["dit_step"]
    assert "/ floor" in run.stdout and "overcounts the backward of grouped convolutions" in run.stdout
    assert dit["grads_equal"] and all(g["max"] <= dit["grad_tolerance"] for g in dit["grads"].values())
    assert dit["floor_ms"] > 0 and all(dit["ms"][m] > 0 and dit["over_floor"][m] > 0 for m in ("ours", "diffusers"))
    assert dit["ms"]["products alone"] > 0


def test_quantize_benchmark_writes_table_and_json(tmp_path):
    from model.world import fresh_world, save_world

    world = save_world(tmp_path / "tiny", fresh_world("tiny", 32, 32))
    out = tmp_path / "quantize.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quantize.py"), "--world", str(world), "--formats", "int8", "nvfp4",
                          "--calib-steps", "1", "--episodes", "1", "--steps", "2", "--skip-eval", "--worlds", str(tmp_path / "worlds"),
                          "--out", str(out)], cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "PSNR vs fp32" in run.stdout
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"fp32", "int8", "nvfp4"}
    assert all(0 < rows[f][key] <= 100 for f in ("int8", "nvfp4") for key in ("psnr_db", "psnr_first_step_db", "psnr_last_step_db"))


def test_forward_benchmark_writes_table_and_json(tmp_path):
    out = tmp_path / "forward.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "forward.py"), "--dit", "tiny", "--grid", "4", "--frames", "4",
                          "--batches", "1", "2", "--repeats", "1", "--no-compile", "--out", str(out)],
                         cwd=ROOT, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "/ floor" in run.stdout
    data = json.loads(out.read_text())
    assert [r["batch"] for r in data["stream"]] == [1, 2] and [r["frames"] for r in data["forward"]] == [4]
    assert all(r["floor_ms"] > 0 and r["ms"]["ours"] > 0 and r["ms"]["products alone"] > 0 for r in data["forward"] + data["stream"])


def test_realtime_benchmark_writes_table_and_json(tmp_path):
    out = tmp_path / "realtime.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "realtime.py"), "--worlds", "tiny", "--chunks", "1", "--profile", "100", "--quantize", "int8",
                          "--out", str(out)], cwd=ROOT, check=False, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert "video s / s" in run.stdout and "slowest ops" in run.stdout and "float32+int8" in run.stdout
    row, quantized = json.loads(out.read_text())["rows"]
    assert row["quantization"] is None and quantized["quantization"] == "int8"
    assert any(op["op"] == "aten::_int_mm" for op in quantized["profile"]["top_ops"])  # it multiplied in int8
    assert row["chunks_per_60s"] == 80 and row["chunks_timed"] == 1 and len(row["chunk_seconds"]) == 3 + 1 and row["extrapolated"]
    assert row["seconds_for_60s"] == pytest.approx(80 * row["chunk_s_median"])
    assert row["video_seconds_per_wall_second"] == pytest.approx(60 / row["seconds_for_60s"])
    profile = row["profile"]  # the chunk's parts are inside it, and the slowest ops run its products
    assert set(profile["parts_s"]) == {"dit", "vae decoder"} and 0 < sum(profile["parts_s"].values()) < profile["chunk_s"]
    assert 5 < len(profile["top_ops"]) <= 100 and any(op["op"] in ("aten::addmm", "aten::mm", "aten::bmm") for op in profile["top_ops"])


def test_gpu_check_rejects_an_unknown_part_before_it_starts():
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], cwd=ROOT, env={**os.environ, "PARTS": "gpu_tests gdns"},
                         check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "PARTS: unknown part gdns (the parts: gpu_tests gdn " in run.stderr and not run.stdout


def test_realtime_rejects_a_negative_profile():
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "realtime.py"), "--profile", "-1"], cwd=ROOT, check=False,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--profile must be >= 0" in run.stderr


def test_sb3_vec_benchmark_writes_table_and_json(tmp_path):
    from model.world import fresh_world, save_world

    world = save_world(tmp_path / "tiny", fresh_world("tiny", 32, 32))
    out = tmp_path / "sb3_vec.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sb3_vec.py"), "--world", str(world), "--world-size", "tiny", "--size", "32", "--num-envs", "2",
                          "--steps", "1", "--rounds", "2", "--out", str(out)], cwd=ROOT, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "SB3 make_vec_env steps/s" in run.stdout
    (row,) = json.loads(out.read_text())["results"]
    assert row["num_envs"] == 2 and len(row["rounds"]["batched"]) == len(row["rounds"]["make_vec_env"]) == 2
    assert row["ratio"] == row["batched_steps_per_s"] / row["make_vec_env_steps_per_s"] > 0


def test_world_curve_reads_eval_folders_and_plots(tmp_path):
    def fake_eval(name, world_early, world_all):
        folder = tmp_path / name
        folder.mkdir()
        worlds = {"world": {"early_psnr": world_early, "fidelity_psnr": world_all}, "repeat_first": {"early_psnr": 19.0, "fidelity_psnr": 18.0}}
        (folder / "metrics.json").write_text(json.dumps({"splits": {"smooth": {"seconds": 6.0, "worlds": worlds}}}))
        return folder

    out = tmp_path / "curve.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "world_curve.py"), "--point", f"a:1.5:{fake_eval('a', 20.0, 18.5)}",
                          "--point", f"b:3:{fake_eval('b', 21.5, 19.0)}", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "| b | 3.00 | +2.50 / +1.00 |" in run.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["splits"]["smooth"]["early_gain"] for r in rows] == [1.0, 2.5] and out.with_suffix(".png").stat().st_size > 0
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "world_curve.py"), "--point", f"c:1:{tmp_path}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no metrics.json" in bad.stderr
