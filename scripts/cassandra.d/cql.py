#!/usr/bin/env python3
"""Tiny CQL client (native protocol v4, python3 standard library only) for scripts/cassandra.

    cql.py [--host H] [--port P] ping
        STARTUP + SELECT release_version FROM system.local; prints the version.
        Exit 0 when CQL answers, 1 when it does not (connection refused, timeout, error).
    cql.py [--host H] [--port P] [-k KEYSPACE] [--consistency ONE] query STMT [STMT ...]
        Runs each statement on one connection (so `USE ks` carries over) and prints result
        rows crudely (tab-separated, header first). "-" reads statements from stdin, split on
        ';' outside quotes and comments. Exits 2 on the first error.

No auth, no TLS, no paging (the whole result comes back in one frame), no compression.
"""

import argparse
import datetime
import ipaddress
import socket
import struct
import sys
import uuid
from decimal import Decimal

VERSION = 0x04
OP_ERROR, OP_STARTUP, OP_READY, OP_OPTIONS, OP_SUPPORTED, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x08
FLAG_TRACING, FLAG_CUSTOM_PAYLOAD, FLAG_WARNING = 0x02, 0x04, 0x08

CONSISTENCY = {
    "ANY": 0x0000, "ONE": 0x0001, "TWO": 0x0002, "THREE": 0x0003, "QUORUM": 0x0004, "ALL": 0x0005,
    "LOCAL_QUORUM": 0x0006, "EACH_QUORUM": 0x0007, "SERIAL": 0x0008, "LOCAL_SERIAL": 0x0009,
    "LOCAL_ONE": 0x000A,
}


class CqlError(Exception):
    pass


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise CqlError("truncated frame")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self):
        return self.take(1)[0]

    def short(self):
        return struct.unpack(">H", self.take(2))[0]

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def string(self):
        return self.take(self.short()).decode("utf-8", "replace")

    def long_string(self):
        return self.take(self.int()).decode("utf-8", "replace")

    def string_list(self):
        return [self.string() for _ in range(self.short())]

    def bytes(self):
        n = self.int()
        return None if n < 0 else self.take(n)

    def short_bytes(self):
        return self.take(self.short())

    def option(self):
        type_id = self.short()
        if type_id == 0x0000:
            return ("custom", self.string())
        if type_id in (0x0020, 0x0022):
            return (type_id, self.option())
        if type_id == 0x0021:
            return (type_id, self.option(), self.option())
        if type_id == 0x0030:
            ks, name = self.string(), self.string()
            fields = [(self.string(), self.option()) for _ in range(self.short())]
            return (type_id, ks, name, fields)
        if type_id == 0x0031:
            return (type_id, [self.option() for _ in range(self.short())])
        return (type_id,)


def enc_string(s):
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


def enc_long_string(s):
    b = s.encode("utf-8")
    return struct.pack(">i", len(b)) + b


def enc_string_map(m):
    out = struct.pack(">H", len(m))
    for k, v in m.items():
        out += enc_string(k) + enc_string(v)
    return out


def decode_value(t, raw):
    """Crude rendering of a CQL value for printing."""
    if raw is None:
        return "null"
    tid = t[0]
    try:
        if tid in (0x0001, 0x000A, 0x000D):  # ascii, text, varchar
            return raw.decode("utf-8", "replace")
        if tid in (0x0002, 0x0005):  # bigint, counter
            return str(struct.unpack(">q", raw)[0])
        if tid == 0x0009:  # int
            return str(struct.unpack(">i", raw)[0])
        if tid == 0x0013:  # smallint
            return str(struct.unpack(">h", raw)[0])
        if tid == 0x0014:  # tinyint
            return str(struct.unpack(">b", raw)[0])
        if tid == 0x0004:  # boolean
            return "true" if raw != b"\x00" else "false"
        if tid == 0x0007:  # double
            return repr(struct.unpack(">d", raw)[0])
        if tid == 0x0008:  # float
            return repr(struct.unpack(">f", raw)[0])
        if tid in (0x000C, 0x000F):  # uuid, timeuuid
            return str(uuid.UUID(bytes=raw))
        if tid == 0x000B:  # timestamp (ms since epoch)
            ms = struct.unpack(">q", raw)[0]
            epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
            return (epoch + datetime.timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")
        if tid == 0x0010:  # inet
            return str(ipaddress.ip_address(raw))
        if tid == 0x000E:  # varint
            return str(int.from_bytes(raw, "big", signed=True))
        if tid == 0x0006:  # decimal
            scale = struct.unpack(">i", raw[:4])[0]
            return str(Decimal(int.from_bytes(raw[4:], "big", signed=True)).scaleb(-scale))
        if tid in (0x0020, 0x0022):  # list, set
            r = Reader(raw)
            items = [decode_value(t[1], r.bytes()) for _ in range(r.int())]
            return ("[%s]" if tid == 0x0020 else "{%s}") % ", ".join(items)
        if tid == 0x0021:  # map
            r = Reader(raw)
            items = []
            for _ in range(r.int()):
                k = decode_value(t[1], r.bytes())
                items.append("%s: %s" % (k, decode_value(t[2], r.bytes())))
            return "{%s}" % ", ".join(items)
    except (struct.error, ValueError, CqlError):
        pass
    return "0x" + raw.hex()


class Connection:
    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.stream = 0
        self.warnings = []

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise CqlError("connection closed by server")
            buf += chunk
        return buf

    def request(self, opcode, body):
        self.stream = (self.stream + 1) % 0x7FFF
        header = struct.pack(">BBhBi", VERSION, 0, self.stream, opcode, len(body))
        self.sock.sendall(header + body)
        while True:
            version, flags, stream, op, length = struct.unpack(">BBhBi", self._recv_exact(9))
            body = self._recv_exact(length)
            if stream == self.stream:
                break  # skip events / other streams (none expected)
        if version & 0x7F != VERSION:
            raise CqlError("server answered with protocol version %d" % (version & 0x7F))
        r = Reader(body)
        if flags & FLAG_TRACING:
            r.take(16)
        if flags & FLAG_WARNING:
            self.warnings.extend(r.string_list())
        if flags & FLAG_CUSTOM_PAYLOAD:
            for _ in range(r.short()):
                r.string()
                r.bytes()
        if op == OP_ERROR:
            code = r.int()
            raise CqlError("error 0x%04X: %s" % (code, r.string()))
        return op, r

    def startup(self):
        op, _ = self.request(OP_STARTUP, enc_string_map({"CQL_VERSION": "3.0.0"}))
        if op != OP_READY:
            raise CqlError("expected READY, got opcode 0x%02X" % op)

    def query(self, cql, consistency="ONE"):
        body = enc_long_string(cql) + struct.pack(">HB", CONSISTENCY[consistency.upper()], 0)
        op, r = self.request(OP_QUERY, body)
        if op != OP_RESULT:
            raise CqlError("expected RESULT, got opcode 0x%02X" % op)
        kind = r.int()
        if kind == 0x0001:
            return ("void", None)
        if kind == 0x0003:
            return ("set_keyspace", r.string())
        if kind == 0x0005:
            change, target = r.string(), r.string()
            what = [r.string()]
            if target != "KEYSPACE":
                what.append(r.string())
                if target in ("FUNCTION", "AGGREGATE"):
                    what.append(",".join(r.string_list()))
            return ("schema_change", "%s %s %s" % (change, target, ".".join(what)))
        if kind == 0x0002:
            flags = r.int()
            ncols = r.int()
            if flags & 0x0002:
                r.bytes()  # paging state
            cols = []
            if not flags & 0x0004:
                if flags & 0x0001:
                    r.string(), r.string()
                for _ in range(ncols):
                    if not flags & 0x0001:
                        r.string(), r.string()
                    cols.append((r.string(), r.option()))
            rows = []
            for _ in range(r.int()):
                rows.append([r.bytes() for _ in range(ncols)])
            return ("rows", (cols, rows))
        return ("result", "kind 0x%04X" % kind)


def split_statements(text):
    """Split on ';' outside '...', "...", $$...$$ and -- or // comments."""
    out, cur, i, n = [], [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n:
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            cur.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("$$", i):
            j = text.find("$$", i + 2)
            j = n if j < 0 else j + 2
            cur.append(text[i:j])
            i = j
        elif text.startswith("--", i) or text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ";":
            out.append("".join(cur))
            cur = []
            i += 1
        else:
            cur.append(c)
            i += 1
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


def print_result(kind, payload):
    if kind == "rows":
        cols, rows = payload
        print("\t".join(name for name, _ in cols))
        for row in rows:
            print("\t".join(decode_value(t, v) for (_, t), v in zip(cols, row)))
        print("(%d row%s)" % (len(rows), "" if len(rows) == 1 else "s"))
    elif kind == "void":
        print("OK")
    else:
        print("%s: %s" % (kind.replace("_", " "), payload))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9042)
    ap.add_argument("--timeout", type=float, default=10.0, help="socket timeout in seconds")
    ap.add_argument("-k", "--keyspace")
    ap.add_argument("--consistency", default="ONE", choices=sorted(CONSISTENCY))
    ap.add_argument("command", choices=["ping", "query"])
    ap.add_argument("statements", nargs="*")
    args = ap.parse_args()

    try:
        conn = Connection(args.host, args.port, args.timeout)
    except OSError as e:
        print("cannot connect to %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 1
    try:
        conn.startup()
        if args.command == "ping":
            kind, payload = conn.query("SELECT release_version FROM system.local WHERE key = 'local'")
            if kind != "rows" or not payload[1]:
                raise CqlError("no row in system.local")
            print(decode_value(payload[0][0][1], payload[1][0][0]))
            return 0
        statements = []
        for s in args.statements:
            statements.extend(split_statements(sys.stdin.read()) if s == "-" else [s])
        if args.keyspace:
            statements.insert(0, 'USE "%s"' % args.keyspace)
        for stmt in statements:
            try:
                kind, payload = conn.query(stmt, args.consistency)
            except CqlError as e:
                print("ERROR in: %s\n  %s" % (stmt, e), file=sys.stderr)
                return 2
            finally:
                for w in conn.warnings:
                    print("warning: %s" % w, file=sys.stderr)
                conn.warnings = []
            print_result(kind, payload)
        return 0
    except (OSError, CqlError, struct.error) as e:
        print("CQL failure on %s:%d: %s" % (args.host, args.port, e), file=sys.stderr)
        return 1 if args.command == "ping" else 2
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
