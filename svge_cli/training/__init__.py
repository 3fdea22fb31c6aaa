"""Training loops: the VAE's epoch loop and config (`loop`), `svge train-vae` (`vae`),
joint VAE + regressor fine-tuning (`finetune`) and the train/test splits recorded in checkpoints.
"""
