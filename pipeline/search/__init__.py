"""The redesign search engine, apart from the design families (pipeline/models/).

- space.py: the declared design space <-> KerasTuner hyperparameters <-> designs
- tuner.py: one KerasTuner round, stopped by goal, clock or trials; failed trials recorded
- diagnosis.py: learning curves -> diagnoses -> the next round's space
- rounds.py: the loop (subset search, full-data confirmation, ensemble, diagnosis)
- records.py: what the loop records (trials, rounds), and the history for people
"""
