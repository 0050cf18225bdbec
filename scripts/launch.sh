# Sourced by ./ferry (the source tree) and by bin/ferry of the release tarball (`ferry dist`): the
# one place that knows how the ferry jar is started, so a packaged host runs its daemons exactly as
# a developer's checkout does.
#   ferry_launch JAVA JAR ARGS...    (never returns)

ferry_launch() {
  local java="$1" jar="$2"
  shift 2
  if [[ "${1:-}" == agent || "${1:-}" == coordinator ]]; then
    # Daemons run with the same bounded heap however they are started (see DaemonJvm.java);
    # FERRY_JAVA_OPTS adds options (later ones win).
    local jvm
    mapfile -t jvm < <("$java" -cp "$jar" dev.ferry.cli.DaemonJvm "$1")
    if ((${#jvm[@]} == 0)); then
      echo "ferry: cannot read the daemon's JVM options from $jar" >&2
      exit 1
    fi
    # shellcheck disable=SC2086
    exec "$java" "${jvm[@]}" ${FERRY_JAVA_OPTS:-} -jar "$jar" "$@"
  fi
  # ZooKeeper's client brings unshaded Netty 4.1, which allocates through sun.misc.Unsafe; JDK 25
  # prints four WARNING lines about it into every command's output unless it is allowed.
  exec "$java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -XX:+UseParallelGC \
    -jar "$jar" "$@"
}
