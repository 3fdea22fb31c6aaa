"""svge: neural architecture search in the smooth latent space of a variational graph autoencoder."""

__version__ = "0.1.0"
