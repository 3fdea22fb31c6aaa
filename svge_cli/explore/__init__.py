"""Looking around the latent space: extrapolation to larger cells, circles, and the
drawings (cells, circles, latent plots).
"""
