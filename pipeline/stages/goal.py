"""Stage 1, goal: the validated goal (task, metric, threshold and which way is better)."""

from pipeline.config import PipelineConfig
from pipeline.files import write_json
from pipeline.paths import Paths
from pipeline.tracking import StageRun


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    objective = cfg.objective
    goal = {"task": cfg.goal.task, "metric": objective.metric, "threshold": objective.threshold,
            "direction": objective.direction, "goal": objective.describe()}
    write_json(paths.goal, goal)
    tracker.set_tags({"goal": objective.describe()})
    print(f"goal: {cfg.goal.task}, test {objective.describe()}")
    return goal
