"""agents: the InstructGPT training stages (SFT, reward model, PPO) that train in TextBandit."""
