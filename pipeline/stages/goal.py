"""Stage 1, goal: the validated config's goal (task, metric, threshold, direction, budget)."""

from pipeline.config import PipelineConfig
from pipeline.paths import Paths, write_json
from pipeline.tracking import StageRun


def run(cfg: PipelineConfig, paths: Paths, tracker: StageRun) -> dict:
    goal = {
        "task": cfg.goal.task,
        "metric": cfg.goal.metric,
        "threshold": cfg.goal.threshold,
        "direction": cfg.goal.direction,
        "fail_on_miss": cfg.goal.fail_on_miss,
        "data": cfg.data.source,
        "budget": {
            "search_time_s": cfg.search.time_budget_s,
            "search_max_trials": cfg.search.max_trials,
            "train_max_epochs": cfg.train.epochs,
        },
    }
    write_json(paths.goal, goal)
    tracker.set_tags({"goal": f"{cfg.goal.metric} {'<=' if cfg.goal.direction == 'min' else '>='} {cfg.goal.threshold}"})
    print(f"goal: {cfg.goal.task} on {cfg.data.source}, test {cfg.goal.metric} "
          f"{'<=' if cfg.goal.direction == 'min' else '>='} {cfg.goal.threshold}")
    return goal


if __name__ == "__main__":
    from pipeline.cli import run_stage

    run_stage("goal")
