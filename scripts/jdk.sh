# Sourced by ./ferry and ./run-tests: sets JAVA_HOME to a JDK 25 or newer, or exits with a message.
# Order: $JAVA_HOME, then every JDK under /usr/lib/jvm (newest first), then java on PATH.

ferry_java_version() {
  # Prints the major version of the java binary $1 (e.g. 25), or nothing.
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' | cut -d. -f1
}

ferry_find_jdk() {
  local candidates=()
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME")
  local d
  for d in $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
    candidates+=("${d%/}")
  done
  if command -v java >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  local c v
  for c in "${candidates[@]}"; do
    [[ -x "$c/bin/java" && -x "$c/bin/javac" ]] || continue
    v="$(ferry_java_version "$c/bin/java")"
    if [[ -n "$v" && "$v" -ge 25 ]]; then
      echo "$c"
      return 0
    fi
  done
  return 1
}

if ! FERRY_JDK="$(ferry_find_jdk)"; then
  echo "ferry: needs a JDK 25 or newer (found none in \$JAVA_HOME, /usr/lib/jvm or on PATH)." >&2
  echo "ferry: install one (for example Temurin 25) and set JAVA_HOME to it." >&2
  exit 1
fi
export JAVA_HOME="$FERRY_JDK"
