"""MySQL: MariaDB's mariadbd, driven by PyMySQL, mysql-connector-python and the mariadb CLI.

PyMySQL speaks the text protocol (classic EOF flow); mysql-connector-python
(pure Python, ``prepared=True``) sends COM_STMT_PREPARE/EXECUTE/CLOSE.  The
data directory is created by ``mariadb-install-db`` (a preparation step, so
it runs where the server runs) and the application user by ``--init-file``,
which the server executes before it accepts connections.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ._clients import run_client
from ._description import Service
from ._probes import exchange
from ._running import Running

#: Rows of the large result set: many packets, several TCP segments.
LARGE_RESULT_ROWS = 2000
USER, PASSWORD = "app", "secret"

INIT_SQL = f"""CREATE USER IF NOT EXISTS {USER}@'%' IDENTIFIED BY '{PASSWORD}';
GRANT ALL ON *.* TO {USER}@'%';
"""


def _files(running: Running) -> dict[str, str]:
    return {"init.sql": INIT_SQL}


def _prepare(running: Running) -> list[list[str]]:
    return [[
        "mariadb-install-db", "--no-defaults", f"--datadir={running.workdir}/data",
        "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
    ]]  # fmt: skip


def _command(running: Running) -> list[str]:
    tmp = running.workdir
    return [
        "mariadbd", "--no-defaults", f"--datadir={tmp}/data", f"--socket={tmp}/sock",
        f"--port={running.port}", f"--bind-address={running.host}", "--user=root",
        "--skip-log-bin", f"--pid-file={tmp}/pid", f"--init-file={tmp}/init.sql",
    ]  # fmt: skip


def _ready(running: Running) -> bool:
    # The initial handshake packet: 3-byte length, sequence 0, protocol version 10.
    return exchange(running, b"", lambda reply: len(reply) >= 5 and reply[4] == 10)


def _pymysql(running: Running, **kwargs: Any) -> Any:
    import pymysql  # type: ignore[import-untyped,import-not-found,unused-ignore]

    return pymysql.connect(host=running.host, port=running.port, user=USER, **kwargs)


def _traffic(running: Running) -> None:
    """A failed login, text queries, an error, a large result set, prepared statements, CLI."""
    import mysql.connector  # type: ignore[import-untyped,import-not-found,unused-ignore]
    import pymysql  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with contextlib.suppress(pymysql.MySQLError):  # ERR 1045 to the login
        _pymysql(running, password="wrong")
    conn = _pymysql(running, password=PASSWORD, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS shop")
        cur.execute("CREATE DATABASE shop")
        conn.select_db("shop")
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))")
        cur.execute("INSERT INTO items VALUES (1, 'apple'), (2, 'pear'), (3, 'fig')")
        cur.execute("SELECT id, name FROM items ORDER BY id")
        with contextlib.suppress(pymysql.MySQLError):
            cur.execute("SELECT * FROM missing_table")  # ERR 1146
        cur.execute("CREATE TABLE big (id INT PRIMARY KEY, label VARCHAR(40))")
        cur.executemany(  # PyMySQL folds this into one multi-row INSERT
            "INSERT INTO big VALUES (%s, %s)",
            [(n, f"row number {n}") for n in range(1, LARGE_RESULT_ROWS + 1)],
        )
        cur.execute("SELECT id, label FROM big ORDER BY id")
        if len(cur.fetchall()) != LARGE_RESULT_ROWS:
            raise AssertionError("the large result set came back short")
    conn.ping()
    conn.close()
    conn2 = mysql.connector.connect(
        host=running.host, port=running.port, user=USER, password=PASSWORD,
        database="shop", use_pure=True,
    )  # fmt: skip
    cur2 = conn2.cursor(prepared=True)
    cur2.execute("SELECT name FROM items WHERE id > ?", (1,))
    cur2.fetchall()
    with contextlib.suppress(mysql.connector.Error):
        cur2.execute("SELECT nope FROM items WHERE id = ?", (1,))  # ERR 1054 to the prepare
    cur2.close()
    conn2.close()
    run_client(
        "mariadb", "--no-defaults", "-h", running.host, "-P", str(running.port), "-u", USER,
        f"-p{PASSWORD}", "shop", "-e",
        "SELECT name FROM items WHERE id < 3; SELECT 1 FROM items LIMIT 0",
    )  # fmt: skip


#: A statement longer than the records' text limit (flagged as truncated there).
LONG_STATEMENT = "SELECT '" + "x" * 600 + "' AS long_text"


def _variants(running: Running) -> None:
    """The compressed protocol (``mariadb --compress``: zlib), with a statement long
    enough to be compressed and a result set, and a statement past the text limit."""
    mariadb = ["mariadb", "--no-defaults", "-h", running.host, "-P", str(running.port),
               "-u", USER, f"-p{PASSWORD}"]  # fmt: skip
    run_client(
        *mariadb,
        "--compress",
        "-e",
        "CREATE DATABASE IF NOT EXISTS shop; USE shop; "
        "CREATE TABLE IF NOT EXISTS notes (id INT PRIMARY KEY, body VARCHAR(200)); "
        "REPLACE INTO notes VALUES (1, '" + "compressed " * 15 + "'), (2, 'short'); "
        "SELECT id, body FROM notes ORDER BY id; SELECT nope FROM notes",
        ok=(1,),
    )  # fmt: skip  (the last statement fails: ERR 1054)
    run_client(*mariadb, "-e", LONG_STATEMENT)


def status_counters(running: Running) -> dict[str, int]:
    """The server's ``Com_*`` counters that are not zero (``Com_select``, ``Com_stmt_prepare``…)."""
    conn = _pymysql(running, password=PASSWORD)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Com\\_%'")
            return {name: int(value) for name, value in cur.fetchall() if value != "0"}
    finally:
        conn.close()


MYSQL = Service(
    name="mysql",
    fixture="mariadb.pcap",
    protocol="mysql",
    package="mariadb-server",
    program="mariadbd",
    port=13306,
    files=_files,
    prepare=_prepare,
    command=_command,
    ready=_ready,
    traffic=_traffic,
    variants=_variants,
    stats=status_counters,
    clients=("mariadb",),
    start_timeout=60.0,
)
