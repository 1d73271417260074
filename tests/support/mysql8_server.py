"""A MySQL 8 stand-in for the event store's read path, on the MySQL server protocol (mysql-mimic).

No MySQL 8 server can be installed on the project's machines, and MariaDB (what the other tests
use) sends JSON columns as text. MySQL 8 does not: a `JSON` column comes over the wire with its
own column type (245, MYSQL_TYPE_JSON) and the binary collation, and MySQL normalizes JSON
documents (object keys sorted by length, then bytes; no insignificant whitespace). This server
answers the SELECTs of `EventStore::read_after` as MySQL 8 types them:

* a bare `payload` / `metadata` column: type JSON, collation binary, the normalized document;
* `CAST(payload AS CHAR)`: type LONG_BLOB, collation utf8mb4 (MySQL's LONGTEXT result);
* ids, `seq` and accounts as BIGINT UNSIGNED, `aggregate_version` as INT UNSIGNED, times as DATETIME(6), other columns as VARCHAR.

It holds one table of events given as JSON on the command line and filters them by the query's
`id`, `seq` and `account_id` conditions (`>`, `>=`, `<=`, `=`), in the `ORDER BY` column. Everything else a client sends
while connecting (SET …, SELECT @@…) is acknowledged.

    python mysql8_server.py --port 3399 --events '[{"id": 1, ...}]'

Prints "listening <port>" on stdout once it accepts connections.
"""

import argparse
import asyncio
import datetime
import json
import re

from mysql_mimic import MysqlServer, ResultColumn, ResultSet, Session
from mysql_mimic import packets
from mysql_mimic.charset import CharacterSet
from mysql_mimic.types import ColumnDefinition, ColumnType, str_len

UNSIGNED = {"id", "seq", "account_id", "aggregate_version"}
# INT UNSIGNED; the others are BIGINT UNSIGNED.
INT = {"aggregate_version"}

# MySQL marks BIGINT UNSIGNED columns with the UNSIGNED flag; mysql-mimic has no field for it.
_column_definition = packets.make_column_definition_41


def _with_flags(*args, **kwargs):
    if kwargs.get("name") in UNSIGNED:
        kwargs["flags"] = ColumnDefinition.UNSIGNED_FLAG | ColumnDefinition.NOT_NULL_FLAG
    if kwargs.get("column_type") == ColumnType.JSON:
        kwargs["flags"] = kwargs.get("flags", ColumnDefinition(0)) | ColumnDefinition.BLOB_FLAG | ColumnDefinition.BINARY_FLAG
    return _column_definition(*args, **kwargs)


packets.make_column_definition_41 = _with_flags
import mysql_mimic.connection as _connection  # noqa: E402  (patched after import on purpose)

_connection.packets.make_column_definition_41 = _with_flags


# MySQL sends no EOF packet after the parameter definitions of COM_STMT_PREPARE when the client
# set CLIENT_DEPRECATE_EOF (sqlx does); mysql-mimic 3.0 always sends one.
def _prepare_response(self, statement):
    yield packets.make_com_stmt_prepare_ok(statement)
    if statement.num_params:
        for _ in range(statement.num_params):
            yield packets.make_column_definition_41(server_charset=self.server_charset, name="?")
        if not self.deprecate_eof():
            yield self.eof()


_connection.Connection.com_stmt_prepare_response = _prepare_response


def normalize(value):
    """A JSON document as MySQL 8 stores and returns it."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (len(kv[0].encode()), kv[0].encode()))
        return "{" + ", ".join(json.dumps(k) + ": " + normalize(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(normalize(v) for v in value) + "]"
    return json.dumps(value)


def column(expr, events):
    expr = expr.strip()
    m = re.fullmatch(r"LENGTH\((\w+)\)", expr, re.I)
    if m:
        return expr, m.group(1), ResultColumn(expr, ColumnType.LONGLONG), "length"
    m = re.fullmatch(r"CAST\((\w+) AS CHAR\)(?: AS (\w+))?", expr, re.I)
    if m:
        name = m.group(2) or m.group(1)
        return name, m.group(1), ResultColumn(name, ColumnType.LONG_BLOB, CharacterSet.utf8mb4), "text"
    name = expr
    if name in ("payload", "metadata"):
        # JSON text is UTF-8 on the wire, whatever the binary collation says.
        utf8 = lambda _col, v: v.encode("utf-8")  # noqa: E731
        utf8_len = lambda _col, v: str_len(v.encode("utf-8"))  # noqa: E731
        col = ResultColumn(name, ColumnType.JSON, CharacterSet.binary, text_encoder=utf8, binary_encoder=utf8_len)
        return name, name, col, "json"
    if name in UNSIGNED:
        return name, name, ResultColumn(name, ColumnType.LONG if name in INT else ColumnType.LONGLONG), "int"
    if name in ("occurred_at", "created_at"):
        return name, name, ResultColumn(name, ColumnType.DATETIME), "time"
    return name, name, ResultColumn(name, ColumnType.VAR_STRING, CharacterSet.utf8mb4), "text"


class EventStore8(Session):
    def __init__(self, events):
        super().__init__()
        self.events = events

    async def handle_query(self, sql, attrs):
        s = sql.strip()
        if not re.match(r"SELECT .* FROM event_store", s, re.I | re.S):
            # SET …, SELECT @@…, and anything else a client sends while connecting.
            return ResultSet([], []) if not s.upper().startswith("SELECT") else ([[1]], ["1"])
        select = re.match(r"SELECT (.*) FROM event_store(.*)", s, re.I | re.S)
        exprs = [e for e in re.split(r",(?![^(]*\))", select.group(1))]
        where = select.group(2)
        rows = list(self.events)
        for field, op, value in re.findall(r"\b(id|seq|account_id)\s*(>=|<=|>|=)\s*(\d+)", where):
            value = int(value)
            test = {">": lambda a: a > value, ">=": lambda a: a >= value, "<=": lambda a: a <= value, "=": lambda a: a == value}[op]
            rows = [r for r in rows if test(r[field])]
        order = re.search(r"ORDER BY (\w+)", where, re.I)
        rows.sort(key=lambda r: r[order.group(1) if order else "id"])
        limit = re.search(r"LIMIT\s+(\d+)", where, re.I)
        if limit:
            rows = rows[: int(limit.group(1))]
        cols = [column(e, self.events) for e in exprs]
        out = []
        for r in rows:
            line = []
            for _name, source, _col, kind in cols:
                v = r.get(source)
                if v is None:
                    line.append(None)
                elif kind == "length":
                    line.append(len(normalize(v).encode("utf-8")))
                elif source in ("payload", "metadata"):
                    line.append(normalize(v))
                elif kind == "time":
                    line.append(datetime.datetime.fromisoformat(v))
                else:
                    line.append(v)
            out.append(line)
        return ResultSet(out, [c[2] for c in cols])


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", required=True, help="a JSON array of rows")
    args = parser.parse_args()
    events = json.loads(args.events)
    server = MysqlServer(session_factory=lambda: EventStore8(events))
    await server.start_server(host="127.0.0.1", port=args.port)
    print("listening", args.port, flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
