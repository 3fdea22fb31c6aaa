"""How good an autoencoder is: reconstruction accuracy and the paper's Table I abilities."""
