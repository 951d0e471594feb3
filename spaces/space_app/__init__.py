"""The Space: chat with a recipe's model, its evaluations, every stage's data, and the provenance
of any row. `builder space serve` runs it on a recipe's store; `builder space deploy` publishes it
as a Hub Space (see spaces/README.md)."""
