"""Reads a timebucket archive with tools nobody on the project wrote: pyarrow and DuckDB.

Usage: read.py ARCHIVE_DIR SERVICE

Prints one JSON object:
  files:  per data file of the manifest, what pyarrow reads: rows, column types, the Hive
          partition values of its path and the file's key-value metadata
  stats:  per (bucket, path) of SERVICE's API readings, computed by DuckDB SQL over the Hive
          layout: the request count (sum of `count`) and the request-weighted nearest-rank p99
"""

import json
import os
import sys

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq

root, service = sys.argv[1], sys.argv[2]
with open(os.path.join(root, "manifest.json")) as f:
    manifest = json.load(f)

files = []
for entry in manifest["files"]:
    path = os.path.join(root, entry["path"])
    table = pq.read_table(path)
    metadata = pq.read_metadata(path).metadata or {}
    files.append({
        "path": entry["path"],
        "rows": table.num_rows,
        "types": {field.name: str(field.type) for field in table.schema},
        "metadata": {k.decode(): v.decode() for k, v in metadata.items() if k.startswith(b"timebucket.")},
    })

# The same files as one Hive-partitioned dataset: pyarrow decodes service and bucket from paths.
dataset = ds.dataset(os.path.join(root, "api"), format="parquet", partitioning="hive")
hive_rows = dataset.count_rows(filter=ds.field("service") == service)

query = """
WITH r AS (
  SELECT bucket, path, duration_ms, count
  FROM read_parquet(? || '/api/*/*/*.parquet', hive_partitioning = true)
  WHERE service = ?
), w AS (
  SELECT bucket, path, duration_ms,
         sum(count) OVER (PARTITION BY bucket, path ORDER BY duration_ms
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative,
         sum(count) OVER (PARTITION BY bucket, path) AS total
  FROM r
)
SELECT bucket, path, any_value(total) AS count,
       min(duration_ms) FILTER (WHERE cumulative >= ceil(0.99 * total)) AS p99
FROM w GROUP BY bucket, path ORDER BY bucket, path
"""
rows = duckdb.execute(query, [root, service]).fetchall()
stats = [
    {"bucket": int(bucket), "path": path, "count": int(count), "p99": float(p99)}
    for bucket, path, count, p99 in rows
]
types = duckdb.execute(
    "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(? || '/api/*/*/*.parquet', hive_partitioning = true))",
    [root],
).fetchall()

print(json.dumps({
    "files": files,
    "hive_rows": hive_rows,
    "stats": stats,
    "duckdb_types": dict(types),
}))
