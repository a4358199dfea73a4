"""A local PostgreSQL cluster for the production stack, from Debian's packages (initdb, pg_ctl).

    python -m prefect_mlops.postgres start  [--dir .mlops]   # create once, start, make databases
    python -m prefect_mlops.postgres status|url|stop|remove [--dir .mlops]

The cluster lives under `<stack dir>/postgres/` and listens on 127.0.0.1 only (no Unix socket), on a
port chosen free when it is created and kept in `<stack dir>/postgres.json`. Its one role, `mlops`,
has a generated password kept only in `<stack dir>/postgres.pgpass` (mode 0600, libpq's and
asyncpg's `PGPASSFILE` format), so the connection URLs the stack hands out carry no password.
PostgreSQL refuses to run as root: as root, the server runs as the unprivileged `postgres` user
Debian's package creates (`runuser -u postgres`), which owns the cluster folder and must be able to
reach it (every parent folder of the stack dir needs o+x).
`mlops up` with `MLOPS_STACK_PROFILE=production` and no `MLOPS_STACK_DATABASE_URL` does `start`;
`mlops down` does `stop` (the data stays for the next `up`); `remove` deletes the cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, make_url

from prefect_mlops.errors import MlopsError

if TYPE_CHECKING:
    from psycopg2.extensions import connection

ROLE = "mlops"
# One database per component: Prefect's server, MLflow's tracking store, the prediction log.
DATABASES = ("prefect", "mlflow", "predictions")
INSTALL_HINT = (
    "install them with .ci/install-postgres.sh (apt-get install postgresql postgresql-contrib)"
)
DEBIAN_BIN = Path("/usr/lib/postgresql")


class PostgresError(MlopsError):
    """The local PostgreSQL cluster could not be created, started, reached or stopped."""


def find_bin_dir(preferred: Path | None = None) -> Path:
    """The folder holding initdb and pg_ctl: the given one, else Debian's newest version."""
    candidates = [preferred] if preferred else []
    if not preferred and DEBIAN_BIN.is_dir():
        versions = sorted(
            (p for p in DEBIAN_BIN.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
        )
        candidates += [p / "bin" for p in reversed(versions)]
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    where = preferred or DEBIAN_BIN / "<version>/bin"
    raise PostgresError(
        f"PostgreSQL server binaries (initdb, pg_ctl) not found in {where}: {INSTALL_HINT}"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LocalPostgres:
    """The stack's own cluster under `stack_dir`; `os_user` runs the server when we are root."""

    stack_dir: Path
    bin_dir: Path | None = None
    os_user: str = "postgres"
    host: str = "127.0.0.1"

    @property
    def root(self) -> Path:
        return self.stack_dir / "postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def state_file(self) -> Path:
        return self.stack_dir / "postgres.json"

    @property
    def passfile(self) -> Path:
        return self.stack_dir / "postgres.pgpass"

    def exists(self) -> bool:
        return self.state_file.is_file() and (self.data_dir / "PG_VERSION").is_file()

    def port(self) -> int | None:
        """The port recorded when the cluster was created, None before."""
        if not self.state_file.is_file():
            return None
        return int(json.loads(self.state_file.read_text())["port"])

    def url(self, database: str = "postgres", driver: str = "postgresql") -> URL:
        """A password-free URL of one database (the password comes from `PGPASSFILE`)."""
        port = self.port()
        if port is None:
            raise PostgresError(f"no local PostgreSQL cluster under {self.root} yet (start it)")
        return URL.create(driver, username=ROLE, host=self.host, port=port, database=database)

    def env(self) -> dict[str, str]:
        """What a client needs besides the URL: where its password is."""
        return {"PGPASSFILE": str(self.passfile.resolve())}

    # --- running the binaries ---------------------------------------------------------------

    def _as_server_user(self) -> list[str]:
        """The prefix that runs a server binary as a user PostgreSQL accepts (never root)."""
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam(self.os_user)
        except KeyError:
            raise PostgresError(
                f"running as root, but there is no user {self.os_user!r} to run PostgreSQL as "
                f"(PostgreSQL refuses root): {INSTALL_HINT}, or run as an unprivileged user"
            ) from None
        return ["runuser", "-u", self.os_user, "--"]

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*self._as_server_user(), str(find_bin_dir(self.bin_dir) / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise PostgresError(
                f"{tool} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}"
            )
        return done

    def _prepare_root(self) -> None:
        """The cluster folder, owned by the server's user, which must be able to reach it."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        if os.geteuid() == 0:
            user = pwd.getpwnam(self.os_user)
            os.chown(self.root, user.pw_uid, user.pw_gid)
            reach = subprocess.run([*self._as_server_user(), "test", "-w", str(self.root)])
            if reach.returncode != 0:
                raise PostgresError(
                    f"user {self.os_user!r} (PostgreSQL refuses to run as root) cannot reach "
                    f"{self.root.resolve()}: give its parent folders o+x, or set "
                    "MLOPS_STACK_DIR to a folder it can reach"
                )

    def create(self, port: int = 0) -> str:
        """initdb once: role `mlops` with a generated password, loopback only, a free port."""
        if self.exists():
            return f"postgres: cluster exists under {self.root}"
        find_bin_dir(self.bin_dir)  # a clear error before anything is written
        self._prepare_root()
        password = secrets.token_urlsafe(24)
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, self.os_user)
        os.chmod(pwfile, 0o600)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir.resolve()),
                "-U",
                ROLE,
                f"--pwfile={pwfile.resolve()}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        chosen = port or free_port(self.host)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# prefect-mlops stack: loopback TCP only, no Unix socket\n"
                f"listen_addresses = '{self.host}'\nport = {chosen}\n"
                "unix_socket_directories = ''\n"
                # Prefect's server pools (API and its services), MLflow's workers, the service,
                # flow runs and benchmarks each hold connections.
                "max_connections = 300\n"
            )
        self.passfile.write_text(f"{self.host}:{chosen}:*:{ROLE}:{password}\n")
        os.chmod(self.passfile, 0o600)
        self.state_file.write_text(json.dumps({"port": chosen, "role": ROLE}) + "\n")
        return f"postgres: cluster created under {self.root} (127.0.0.1:{chosen})"

    def running(self) -> bool:
        if not self.exists():
            return False
        return (
            self._run(
                "pg_ctl", "-D", str(self.data_dir.resolve()), "status", check=False
            ).returncode
            == 0
        )

    def start(self, port: int = 0) -> list[str]:
        """Create when missing, start unless running, and make the stack's databases."""
        lines = [self.create(port)] if not self.exists() else []
        if self.running():
            lines.append(f"postgres: already running on {self.host}:{self.port()}")
        else:
            if self.port() is not None and _port_in_use(self.host, int(self.port() or 0)):
                raise PostgresError(
                    f"port {self.port()} of the local PostgreSQL under {self.root} is in use: "
                    "stop what holds it"
                )
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir.resolve()),
                "-l",
                str(self.log_file.resolve()),
                "-w",
                "-t",
                "60",
                "start",
            )
            lines.append(f"postgres: started on {self.host}:{self.port()}, log {self.log_file}")
        lines += ensure_databases(self.url(), self.env())
        return lines

    def stop(self) -> str:
        """Fast shutdown (open sessions are closed, nothing committed is lost)."""
        if not self.running():
            return "postgres: not running"
        self._run("pg_ctl", "-D", str(self.data_dir.resolve()), "-m", "fast", "-w", "stop")
        return f"postgres: stopped ({self.host}:{self.port()})"

    def remove(self) -> str:
        """Stop, then delete the cluster, its password file and its state."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        for path in (self.passfile, self.state_file):
            path.unlink(missing_ok=True)
        return f"postgres: removed {self.root}"


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_databases(server: URL, env: dict[str, str] | None = None) -> list[str]:
    """Create the prefect, mlflow and predictions databases that are missing, and pg_trgm in
    Prefect's (its migrations need it; it comes with postgresql-contrib)."""
    import psycopg2

    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        admin = server.set(drivername="postgresql", database=server.database or "postgres")
        lines = []
        with contextlib.closing(_connect(admin)) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for name in DATABASES:
                    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                    if cursor.fetchone() is None:
                        cursor.execute(f'CREATE DATABASE "{name}"')
                        lines.append(f"postgres: database {name} created")
        with contextlib.closing(_connect(admin.set(database="prefect"))) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                try:
                    cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                except psycopg2.Error as exc:
                    raise PostgresError(
                        f"cannot create the pg_trgm extension Prefect needs in database prefect "
                        f"on {_safe(admin)}: {str(exc).strip()}; it comes with postgresql-contrib: "
                        f"{INSTALL_HINT}"
                    ) from None
        return lines
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _connect(url: URL) -> connection:
    import psycopg2

    try:
        return psycopg2.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database,
            connect_timeout=10,
        )
    except psycopg2.OperationalError as exc:
        raise PostgresError(
            f"cannot connect to PostgreSQL at {_safe(url)}: {str(exc).strip()}"
        ) from None


def _safe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def server_url(text: str) -> URL:
    """An existing server's URL (`postgresql://user:password@host:port[/db]`), checked."""
    try:
        url = make_url(text)
    except Exception as exc:  # sqlalchemy's ArgumentError names no field
        raise PostgresError(f"MLOPS_STACK_DATABASE_URL is not a database URL: {exc}") from None
    if url.get_backend_name() != "postgresql" or not url.host:
        raise PostgresError(
            "MLOPS_STACK_DATABASE_URL must be a PostgreSQL server URL with a host, "
            f"e.g. postgresql://user:password@db.example:5432; got {_safe(url)}"
        )
    return url


def main(argv: list[str] | None = None) -> int:
    """`python -m prefect_mlops.postgres start|status|url|stop|remove [--dir DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m prefect_mlops.postgres", description=__doc__)
    parser.add_argument("action", choices=["start", "status", "url", "stop", "remove"])
    parser.add_argument("--dir", type=Path, default=None, help="the stack dir (MLOPS_STACK_DIR)")
    parser.add_argument("--port", type=int, default=0, help="port of a new cluster (0: free)")
    args = parser.parse_args(argv)
    stack_dir = args.dir or Path(os.environ.get("MLOPS_STACK_DIR", ".mlops"))
    cluster = LocalPostgres(stack_dir)
    try:
        if args.action == "start":
            lines = cluster.start(args.port)
        elif args.action == "stop":
            lines = [cluster.stop()]
        elif args.action == "remove":
            lines = [cluster.remove()]
        elif args.action == "url":
            lines = [f"PGPASSFILE={cluster.passfile.resolve()}"]
            lines += [f"{name}: {cluster.url(name)}" for name in DATABASES]
        else:
            up = cluster.running()
            lines = [
                f"postgres: {'running on' if up else 'stopped,'} {cluster.host}:{cluster.port()}"
            ]
            if not up:
                print(*lines, sep="\n")
                return 1
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(*lines, sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
