"""The GraphX helper jar: ``graphx/src``'s Java compiled against the running Spark's own jars.

GraphX has no Python API, and GraphFrames (its DataFrame wrapper) is not installable here (its
jars 404), so a few lines of Java call GraphX for us. They are compiled at first use rather than
shipped as a jar, so that they always match the Spark they run in (a jar built for one Scala or
Spark version fails in another with a NoSuchMethodError). The result is cached in
``cache_dir/spark`` under a hash of the sources and of the Spark jars' names (which carry Spark's
and Scala's versions): an edit or an upgrade builds a new one, nothing else does. Compiling takes
about 3 s and gives a 3 kB jar.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from ringscope.settings import Settings
from ringscope.spark.session import SparkUnavailableError, require_pyspark

SOURCES = Path(__file__).resolve().parent / "graphx" / "src"


def spark_jars_dir() -> Path:
    """The jars of the Spark that pyspark runs: $SPARK_HOME's when set (as pyspark does), else the
    ones inside the pyspark wheel."""
    require_pyspark()
    import pyspark

    home = os.environ.get("SPARK_HOME")
    return Path(home) / "jars" if home else Path(pyspark.__file__).parent / "jars"


def helper_key(jars: Path) -> str:
    """The cache key: the Java sources (paths and bytes), pyspark's version and the jars' names."""
    import pyspark

    digest = hashlib.sha256(f"pyspark {pyspark.__version__}\n".encode())
    for path in sorted(SOURCES.rglob("*.java")):
        digest.update(path.relative_to(SOURCES).as_posix().encode() + b"\n")
        digest.update(path.read_bytes())
    for name in sorted(p.name for p in jars.glob("*.jar")):
        digest.update(name.encode() + b"\n")
    return digest.hexdigest()[:16]


def helper_jar(settings: Settings) -> Path:
    """The path of the helper jar for this Spark, compiling it first if it is not cached.

    Two processes may compile at once: each builds in a temporary directory of its own and
    renames its jar into place (atomic on one filesystem), so a reader never sees half a jar and
    the last one in wins with identical contents.
    """
    jars = spark_jars_dir()
    out = settings.cache_dir / "spark" / f"ringscope-spark-{helper_key(jars)}.jar"
    if out.exists():
        return out
    javac = shutil.which(settings.javac)
    if javac is None:
        raise SparkUnavailableError(
            f"The Spark engine compiles a small GraphX helper at first use, but the Java compiler "
            f"({settings.javac!r}) is not on PATH. Install a JDK 17 or newer (apt-get install "
            "openjdk-17-jdk-headless), or set RINGSCOPE_JAVAC to its javac."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out.parent) as tmp:
        classes = Path(tmp) / "classes"
        sources = [str(p) for p in sorted(SOURCES.rglob("*.java"))]
        flags = ["--release", "17", "-nowarn", "-encoding", "UTF-8", "-cp", str(jars / "*")]
        proc = subprocess.run(
            [javac, *flags, "-d", str(classes), *sources],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr)[-3000:]
            raise SparkUnavailableError(
                f"Compiling the GraphX helper against {jars} failed (javac exit code "
                f"{proc.returncode}); is the JDK 17 or newer?\n{output}"
            )
        staged = Path(tmp) / out.name
        with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: ringscope\n")
            for cls in sorted(classes.rglob("*.class")):
                jar.write(cls, cls.relative_to(classes).as_posix())
        os.replace(staged, out)
    return out
