"""`train`: supervised fine-tuning with TRL's SFTTrainer, every checkpoint a revision of a model
repository (see `step.py`)."""
