"""``sanawm eval``: how faithfully a learned world follows the camera, measured against the
procedural ground truth on held-out scenes (metrics defined in docs/metrics.md).

    from sanawm_env.evaluation import EvalConfig, evaluate
    result = evaluate(EvalConfig(world="runs/sf/world", splits={"smooth": 10.0}))
    print(result.table)
"""

from .config import EvalConfig
from .paths import SPLITS, mirror_actions, plan_actions, undo_action
from .run import EvalResult, evaluate

__all__ = ["SPLITS", "EvalConfig", "EvalResult", "evaluate", "mirror_actions", "plan_actions", "undo_action"]
