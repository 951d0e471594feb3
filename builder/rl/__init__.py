"""Reinforcement learning on execution feedback: the reward that runs a completion against a
task's own tests (`reward.PassedTestsReward`) and the program it runs (`scoring_program`)."""
