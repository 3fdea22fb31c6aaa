"""Search over architectures, independent of the CLI.

* ``pool``        -- candidate features of every cell of an enumerable space (latent means from a
                     checkpoint, cached per checkpoint fingerprint; or one-hot cells);
* ``surrogates``  -- models fitted on the queried cells (exact Matern GP, DNGO) that predict a
                     mean and variance for every candidate, and condition on fantasies cheaply;
* ``strategies``  -- the `Strategy` protocol, the search driver `run_search`, random search and
                     pool BO (acquisition over the not-yet-queried pool cells);
* ``evolution``   -- regularised evolution (Real et al. 2019) over a pool or over a whole space
                     through mutation + validity + hash;
* ``gp``, ``loop`` -- the paper's decode-based BO: a sparse GP and q-EI in latent space, for spaces
                     that cannot be enumerated;
* ``objectives``  -- what a search maximises: benchmark tables, external evaluators, surrogates;
* ``setup``, ``results`` -- from the workspace to a search problem; the results file and its summary.

Every strategy proposes candidates that were never queried before, and the driver spends
exactly the budget it is given (initial random cells included), so strategies compare on the
one axis that matters to a NAS user: best score against queries.
"""
