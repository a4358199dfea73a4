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
