"""Search over architectures: Gaussian-process surrogates and acquisition (`gp`), the BO
loop (`loop`), objectives (tables, external evaluators, surrogates), problem set-up and results files.
"""
