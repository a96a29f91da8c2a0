"""Starting Spark for ``fabric analyze --engine spark``: checks (pyspark, Java 17+) and the session.

The session is the active one when there is one (``spark-submit``,
Databricks, a test's shared session); otherwise one is built with ``master``
(default ``local[*]``) and :data:`DEFAULT_CONF`, each overridable with
``--conf KEY=VALUE`` or ``spark-defaults.conf``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any

from fabric_trace.errors import EngineUnavailable

#: Spark settings fabric sets when it builds the session (README, "Spark"), unless given.
DEFAULT_CONF = {
    "spark.app.name": "fabric analyze",
    # rows per Arrow batch handed to a kernel's group: a group (trace / session) is one call whatever
    # its size, this only bounds the transfer batches
    "spark.sql.execution.arrow.maxRecordsPerBatch": "10000",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}

#: Java major version Spark 4 needs.
JAVA_MIN = 17


def java_version() -> int | None:
    """Major version of the ``java`` Spark will start ($JAVA_HOME/bin/java, else on $PATH); None if absent."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_spark() -> None:
    """Raise :class:`EngineUnavailable` unless pyspark (with pandas) and Java 17+ are there."""
    try:
        import pandas  # noqa: F401  (pyspark's Arrow UDFs import it)
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailable(f"--engine spark needs pyspark: {exc}",
                                hint='install it with: pip install "fabric-trace[spark]"') from None
    version = java_version()
    if version is None:
        raise EngineUnavailable("--engine spark needs Java 17 or later: no java found (JAVA_HOME, PATH)",
                                hint="install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless) "
                                     "or set JAVA_HOME")
    if version < JAVA_MIN:
        raise EngineUnavailable(f"--engine spark needs Java {JAVA_MIN} or later; found Java {version}",
                                hint="point JAVA_HOME at a JDK 17+")


def spark_session(master: str | None = None, conf: dict[str, str] | None = None) -> Any:
    """The active SparkSession, or a new one (``master``, :data:`DEFAULT_CONF` and ``conf``)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    check_spark()
    # local workers run this interpreter (fabric and its dependencies are installed here)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    if master:
        builder = builder.master(master)
    for key, value in {**DEFAULT_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:  # py4j / JVM start-up failures have no common base class
        raise EngineUnavailable(f"Spark could not start: {_first_line(exc)}",
                                hint="check --master and JAVA_HOME (Java 17+)") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
