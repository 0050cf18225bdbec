#!/usr/bin/env bash
# Builds Ferry's release tarball, ferry-VERSION-linux-x86_64.tar.gz: a Java runtime made with
# jlink (hosts need no JDK and no Maven), bin/ferry, the application's jars (the native
# dirty-tracking hook and the test guest are inside ferry-hypervisor-hooks; the agent copies them
# into its data directory), systemd units, example config files and the docs.
#   ./ferry dist --out DIR        (./ferry builds first when a source changed)
# Needs a built tree (cli/target/ferry.jar and cli/target/lib) and a JDK 25 (jlink, jdeps).
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
usage() { echo "usage: ferry dist --out DIR" >&2; exit 2; }
out=""
while (($#)); do
  case "$1" in
    --out) (($# >= 2)) || usage; out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) echo "usage: ferry dist --out DIR   (writes DIR/ferry-VERSION-linux-x86_64.tar.gz)"; exit 0 ;;
    *) echo "ferry dist: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ -n "$out" ]] || usage
source "$here/scripts/jdk.sh"
jar="$here/cli/target/ferry.jar"
if [[ ! -f "$jar" || ! -d "$here/cli/target/lib" ]]; then
  echo "ferry dist: $jar is not built (mvn -DskipTests package, or ./ferry dist, which builds)" >&2
  exit 1
fi
# The version the build stamped into the jar (git describe), as `ferry --version` prints it.
version="$("$JAVA_HOME/bin/java" -jar "$jar" --version 2>/dev/null | awk '/^ferry / {print $2; exit}')"
[[ -n "$version" ]] || { echo "ferry dist: $jar does not print its version (ferry --version)" >&2; exit 1; }
name="ferry-$version-linux-x86_64"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
mkdir -p "$stage"/{bin,app/lib,lib,systemd,etc,docs}
cp "$jar" "$stage/app/ferry.jar"
cp "$here"/cli/target/lib/*.jar "$stage/app/lib/"
cp "$here/scripts/launch.sh" "$stage/lib/launch.sh"
install -m 0755 "$here/dist/bin/ferry" "$stage/bin/ferry"
cp "$here"/dist/systemd/*.service "$stage/systemd/"
cp "$here"/dist/etc/*.conf "$stage/etc/"
cp "$here/README.md" "$here"/docs/*.md "$stage/docs/"
echo "$version" >"$stage/VERSION"
# The runtime holds the modules the jars use (jdeps), plus jcmd and JFR for troubleshooting a
# running daemon (thread dumps, flight recordings).
modules="$("$JAVA_HOME/bin/jdeps" --print-module-deps --ignore-missing-deps --multi-release 25 -q \
  --class-path "$stage/app/lib/*" "$stage/app/ferry.jar" "$stage"/app/lib/*.jar)"
"$JAVA_HOME/bin/jlink" --add-modules "$modules,jdk.jcmd,jdk.jfr,jdk.management.jfr" \
  --strip-debug --no-man-pages --no-header-files --output "$stage/runtime"
tarball="$out/$name.tar.gz"
tar -C "$work" -czf "$tarball.tmp" "$name"
mv "$tarball.tmp" "$tarball"
echo "$tarball"
