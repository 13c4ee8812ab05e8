"""The redesign search engine, apart from the design families (pipeline/models/).

- space.py: the declared design space <-> KerasTuner hyperparameters <-> design dicts
- tuner.py: one KerasTuner round, stopped by goal, clock or trials; failed trials recorded
- diagnosis.py: learning curves -> diagnoses -> the next round's space
- rounds.py: the loop (subset search, full-data confirmation, diagnosis), and ensembles
"""

from pipeline.search.rounds import Candidate, SearchOutcome, ensemble_of, run_rounds, score_candidate

__all__ = ["Candidate", "SearchOutcome", "ensemble_of", "run_rounds", "score_candidate"]
