"""Training on TRL: SFT warm start and GRPO stages (locate, examine, joint)."""
