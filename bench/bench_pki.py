"""Median time to generate kubeadm's full certificate tree, per encryption algorithm.

Usage: python bench/bench_pki.py [--runs N]
A tree is what `kubeadm init phase certs all` writes: 3 CAs, 7 leaves and the
service-account key (11 private keys), generated in memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubeadm import certs  # noqa: E402
from kubeadm.config import default_cluster_configuration, default_init_configuration  # noqa: E402
from kubeadm.pki import ALGORITHMS  # noqa: E402

# RSA-4096 key generation is slow and its time varies a lot; fewer runs keep
# the benchmark under a minute on 2 cores.
DEFAULT_RUNS = {"RSA-2048": 7, "RSA-3072": 5, "RSA-4096": 3, "ECDSA-P256": 15, "ECDSA-P384": 15}


def time_tree(algorithm: str) -> float:
    init = default_init_configuration(advertise_address="192.0.2.10", node_name="cp1")
    cluster = default_cluster_configuration()
    cluster.encryption_algorithm = algorithm
    start = time.perf_counter()
    certs.generate_pki_tree(init, cluster)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="runs per algorithm (default: per-algorithm)")
    args = parser.parse_args()
    print(f"{'algorithm':<12} {'runs':>4} {'median':>10} {'min':>10} {'max':>10}")
    for algorithm in ALGORITHMS:
        runs = args.runs or DEFAULT_RUNS[algorithm]
        samples = [time_tree(algorithm) for _ in range(runs)]
        print(
            f"{algorithm:<12} {runs:>4} {statistics.median(samples) * 1000:>8.1f}ms "
            f"{min(samples) * 1000:>8.1f}ms {max(samples) * 1000:>8.1f}ms"
        )


if __name__ == "__main__":
    main()
