"""Tuning a softmax regression's learning rate and L2 penalty on the digits
data: random search against grid search at the same budget.

The learning rate and the penalty matter on a log scale, so both searches
cover the same log ranges: the grid with k evenly spaced values of each (k*k
candidates), the random search with k*k draws from scipy.stats.loguniform.
With one hyperparameter mattering much more than the other, the random
search tries k*k distinct values of it where the grid tries only k
(Bergstra and Bengio, 2012).  Each search picks its candidate by
cross-validation on the training part; both are then scored once on the
held-out test part.

Candidates train in parallel on threads (joblib's threading backend): the
fastsm kernels release the GIL, and so does BLAS.

    python examples/hyperparameter_search.py [--budget 16] [--cv 3] [--n-jobs 2]
"""
import argparse
import time
import warnings

import joblib
import numpy as np
from scipy.stats import loguniform
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import fastsm
from fastsm.models import SoftmaxRegression

LEARNING_RATES = (1e-4, 1e-1)
L2_PENALTIES = (1e-6, 1e-1)


def digits_split():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def searches(budget, cv, max_epochs, seed=0):
    """Grid and random search over the same ranges with `budget` candidates each."""
    k = max(2, int(round(np.sqrt(budget))))
    model = SoftmaxRegression(hidden_layer_sizes=(64,), batch_norm=True, max_epochs=max_epochs,
                              random_state=seed)
    grid = GridSearchCV(model, {"learning_rate": np.geomspace(*LEARNING_RATES, k),
                                "l2": np.geomspace(*L2_PENALTIES, k)}, cv=cv)
    random = RandomizedSearchCV(model, {"learning_rate": loguniform(*LEARNING_RATES),
                                        "l2": loguniform(*L2_PENALTIES)},
                                n_iter=k * k, cv=cv, random_state=seed)
    return {"grid": grid, "random": random}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=16, help="candidates per search")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--n-jobs", type=int, default=2, help="models trained at once")
    args = parser.parse_args(argv)
    X_train, X_test, y_train, y_test = digits_split()

    # One thread per model: the parallelism is across models.
    fastsm.set_num_threads(1)
    # A fixed epoch budget per candidate, on purpose: most stop at max_epochs.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    results = {}
    with threadpool_limits(1, user_api="blas"), \
            joblib.parallel_backend("threading", n_jobs=args.n_jobs):
        for name, search in searches(args.budget, args.cv, args.max_epochs).items():
            t0 = time.perf_counter()
            search.fit(X_train, y_train)
            results[name] = {
                "search": search,
                "seconds": time.perf_counter() - t0,
                "fits": len(search.cv_results_["params"]) * args.cv,
                "cv_score": search.best_score_,
                "test_score": search.best_estimator_.score(X_test, y_test),
                "learning_rate": search.best_params_["learning_rate"],
                "l2": search.best_params_["l2"],
            }
    print(f"digits: {len(y_train)} training and {len(y_test)} test images; "
          f"{args.n_jobs} models trained at once on threads")
    print(f"{'search':8s} {'fits':>5s} {'seconds':>8s} {'learning_rate':>14s} {'l2':>10s} "
          f"{'CV accuracy':>12s} {'test accuracy':>14s}")
    for name, r in results.items():
        print(f"{name:8s} {r['fits']:5d} {r['seconds']:8.1f} {r['learning_rate']:14.3g} "
              f"{r['l2']:10.3g} {r['cv_score']:12.4f} {r['test_score']:14.4f}")
    for criterion in ("cv_score", "test_score"):
        g, r = results["grid"][criterion], results["random"][criterion]
        winner = "random search" if r > g else "grid search" if g > r else "neither (a tie)"
        print(f"better {criterion.replace('_', ' ')}: {winner}")
    return results


if __name__ == "__main__":
    main()
