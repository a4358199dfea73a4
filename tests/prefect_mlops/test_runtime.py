import subprocess
import sys
import textwrap


def test_the_heap_is_frozen_at_exit_and_other_handlers_still_run() -> None:
    script = textwrap.dedent(
        """
        import atexit, gc
        from prefect_mlops.runtime import skip_exit_collection
        # registered first, so it runs after skip_exit_collection's handler
        atexit.register(lambda: print("frozen", gc.get_freeze_count() > 0, flush=True))
        skip_exit_collection()
        skip_exit_collection()
        atexit.register(lambda: print("later handler ran", gc.get_freeze_count() == 0, flush=True))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines() == ["later handler ran True", "frozen True"]


def test_threads_are_the_flow_hosts_share_off_a_dask_worker() -> None:
    import sklearn.ensemble  # noqa: F401  (loads OpenMP)
    from threadpoolctl import threadpool_info

    from prefect_mlops.runtime import dask_worker_threads, openmp_threads

    assert dask_worker_threads() is None
    with openmp_threads(1):
        openmp = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
    assert openmp and set(openmp) == {1}


def test_a_dask_worker_sizes_threads_from_its_own_cores_and_slots() -> None:
    import distributed
    import sklearn.ensemble  # noqa: F401  (loads OpenMP)
    from threadpoolctl import threadpool_info

    from prefect_mlops.runtime import cpu_count, dask_worker_threads, openmp_threads

    def sized() -> tuple[int | None, list[int]]:
        with openmp_threads(1):  # the flow host's figure: a worker replaces it with its own
            info = threadpool_info()
        return dask_worker_threads(), [p["num_threads"] for p in info if p["user_api"] == "openmp"]

    # One worker with one slot owns every core; two workers on the host share them.
    for workers, expected in ((1, cpu_count()), (2, max(1, cpu_count() // 2))):
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=False,  # in-process workers: quick to start, same sizing rule
                dashboard_address="127.0.0.1:0",
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            threads, openmp = client.submit(sized, pure=False).result(timeout=60)
        assert threads == expected
        assert set(openmp) == {expected}
