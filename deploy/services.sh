#!/usr/bin/env bash
# Fetch (once) and run graphrec's servers on 127.0.0.1: Kafka (KRaft) and Neo4j 5 + Browser.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: deploy/services.sh COMMAND [kafka|neo4j]...

Commands (without a server name they act on both):
  up        fetch the jars from Maven Central if needed, start, wait until they answer
  down      stop cleanly (SIGTERM, then SIGKILL after 30 s)
  restart   down, then up
  status    what runs where
  reset     stop and delete the server's data directory
  password  print the Neo4j password

Servers bind 127.0.0.1 only. Jars, data and logs live under $GRAPHREC_CACHE
(default ~/.cache/graphrec): kafka-lib-<hash>/, neo4j-lib-<hash>/ (kept apart: their logging
libraries clash), servers/kafka/, servers/neo4j/. Environment:
  GRAPHREC_KAFKA_PORT (9092)  GRAPHREC_KAFKA_CONTROLLER_PORT (9093)  GRAPHREC_KAFKA_HEAP (512m)
  GRAPHREC_NEO4J_BOLT_PORT (7687)  GRAPHREC_NEO4J_HTTP_PORT (7474)
  GRAPHREC_NEO4J_MEMORY (what Neo4j may use; default a quarter of the machine's RAM)
  GRAPHREC_NEO4J_HEAP, GRAPHREC_NEO4J_PAGECACHE (default: from GRAPHREC_NEO4J_MEMORY and the
    store's size at start, see deploy/README.md; set either to override it)
  GRAPHREC_NEO4J_PASSWORD (default: generated once into $GRAPHREC_CACHE/neo4j-password)
  GRAPHREC_SERVERS_DIR (data and logs; default $GRAPHREC_CACHE/servers)
USAGE
}

here=$(cd "$(dirname "$0")" && pwd)
cache=${GRAPHREC_CACHE:-$HOME/.cache/graphrec}
servers=${GRAPHREC_SERVERS_DIR:-$cache/servers}
kafka_port=${GRAPHREC_KAFKA_PORT:-9092}
kafka_controller_port=${GRAPHREC_KAFKA_CONTROLLER_PORT:-9093}
kafka_heap=${GRAPHREC_KAFKA_HEAP:-512m}
bolt_port=${GRAPHREC_NEO4J_BOLT_PORT:-7687}
http_port=${GRAPHREC_NEO4J_HTTP_PORT:-7474}
neo4j_memory=${GRAPHREC_NEO4J_MEMORY:-}
neo4j_heap=${GRAPHREC_NEO4J_HEAP:-}
neo4j_pagecache=${GRAPHREC_NEO4J_PAGECACHE:-}
password_file=$cache/neo4j-password

log() { echo "services: $*" >&2; }
die() { log "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_of() { [ -f "$servers/$1/$1.pid" ] && cat "$servers/$1/$1.pid" || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# fetch NAME: copy the runtime jars of deploy/NAME/pom.xml into the cache once; print the dir.
fetch() {
    local pom="$here/$1/pom.xml" key lib
    key=$(sha256sum "$pom" | cut -c1-12)
    lib="$cache/$1-lib-$key"
    if [ ! -f "$lib/.complete" ]; then
        command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch $1"
        log "fetching $1 jars from Maven Central into $lib"
        rm -rf "$lib"
        mvn -q -B -Dmaven.repo.local="$cache/m2" -f "$pom" \
            org.apache.maven.plugins:maven-dependency-plugin:3.7.1:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$lib" >&2
        touch "$lib/.complete"
    fi
    echo "$lib"
}

# wait_until NAME SECONDS COMMAND...: poll COMMAND until it succeeds or the server dies.
wait_until() {
    local name=$1 limit=$2; shift 2
    for _ in $(seq 1 $((limit * 4))); do
        "$@" && return 0
        alive "$name" || die "$name exited during start-up; see $servers/$name/logs/"
        sleep 0.25
    done
    die "$name did not answer within $limit s; see $servers/$name/logs/"
}

stop() {
    local name=$1 pid
    pid=$(pid_of "$name")
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$servers/$name/$name.pid"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ignored SIGTERM for 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$servers/$name/$name.pid"
}

# ---------------------------------------------------------------- Kafka

kafka_ready() {
    port_open "$kafka_port" && grep -q "Kafka Server started" "$servers/kafka/logs/server.log" 2>/dev/null
}

kafka_up() {
    local dir="$servers/kafka" lib
    if alive kafka && port_open "$kafka_port"; then log "kafka already up on 127.0.0.1:$kafka_port"; return; fi
    port_open "$kafka_port" && die "port $kafka_port is taken by another process"
    lib=$(fetch kafka)
    mkdir -p "$dir/logs" "$dir/data"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_controller_port
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
auto.create.topics.enable=true
log.retention.hours=168
PROPS
    if [ ! -f "$dir/data/meta.properties" ]; then
        local cluster
        cluster=$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
        java -Dlog4j.configuration="file:$here/kafka/log4j.properties" -Dkafka.logs.dir="$dir/logs" \
            -cp "$lib/*" kafka.tools.StorageTool format -t "$cluster" -c "$dir/server.properties" >&2
    fi
    rm -f "$dir/logs/server.log"
    log "starting kafka on 127.0.0.1:$kafka_port (heap $kafka_heap)"
    nohup java "-Xmx$kafka_heap" "-Xms$kafka_heap" -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$here/kafka/log4j.properties" -Dkafka.logs.dir="$dir/logs" \
        -cp "$lib/*" kafka.Kafka "$dir/server.properties" >"$dir/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$dir/kafka.pid"
    wait_until kafka 120 kafka_ready
    log "kafka up on 127.0.0.1:$kafka_port"
}

# ---------------------------------------------------------------- Neo4j

neo4j_password() {
    if [ -n "${GRAPHREC_NEO4J_PASSWORD:-}" ]; then
        echo "$GRAPHREC_NEO4J_PASSWORD"
        return
    fi
    if [ ! -s "$password_file" ]; then
        mkdir -p "$cache"
        (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20 >"$password_file")
    fi
    cat "$password_file"
}

neo4j_ready() {
    port_open "$bolt_port" && curl -sf "http://127.0.0.1:$http_port/browser/" >/dev/null
}

# neo4j_sizing LIB DIR: set neo4j_heap and neo4j_pagecache (unless given) the way Neo4j's own
# `neo4j-admin server memory-recommendation` splits the memory Neo4j may use, with the page
# cache cut to the store plus half again (room to grow) when the store is smaller: a page
# cache larger than the store holds nothing, and this machine runs Kafka and graphrec too.
neo4j_sizing() {
    local lib=$1 dir=$2 budget_mb advice rec_heap rec_cache store_kb store_mb cache_mb
    if [ -n "$neo4j_memory" ]; then
        budget_mb=$(to_mb "$neo4j_memory")
    else
        budget_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 / 4))
    fi
    [ "$budget_mb" -ge 1024 ] || budget_mb=1024
    advice=$(NEO4J_HOME="$dir" NEO4J_CONF="$dir/conf" java -cp "$lib/*" org.neo4j.cli.AdminTool \
        server memory-recommendation --memory="${budget_mb}m" 2>/dev/null) ||
        die "neo4j-admin server memory-recommendation failed"
    rec_heap=$(sed -n 's/^server.memory.heap.max_size=//p' <<<"$advice")
    rec_cache=$(sed -n 's/^server.memory.pagecache.size=//p' <<<"$advice")
    store_kb=$(sed -n 's/^# Total size of data and native indexes in all databases: \([0-9]*\)k$/\1/p' <<<"$advice")
    store_mb=$(((${store_kb:-0} + 1023) / 1024))
    cache_mb=$((store_mb * 3 / 2))
    [ "$cache_mb" -ge 256 ] || cache_mb=256
    [ "$cache_mb" -le "$(to_mb "$rec_cache")" ] || cache_mb=$(to_mb "$rec_cache")
    neo4j_heap=${neo4j_heap:-$rec_heap}
    neo4j_pagecache=${neo4j_pagecache:-${cache_mb}m}
    log "neo4j memory: ${budget_mb}m to use, store ${store_mb}m: heap $neo4j_heap, page cache $neo4j_pagecache"
}

# to_mb SIZE: 512m, 2g, 1500M, 3G (or plain bytes) in MiB.
to_mb() {
    local n=${1%[kKmMgG]} unit=${1: -1}
    case $unit in
    k | K) echo $((n / 1024)) ;;
    m | M) echo "$n" ;;
    g | G) echo $((n * 1024)) ;;
    *) echo $(($1 / 1024 / 1024)) ;;
    esac
}

# write_neo4j_conf DIR: neo4j.conf for the server in DIR (the memory lines once sized).
write_neo4j_conf() {
    local dir=$1
    cat >"$dir/conf/neo4j.conf" <<CONF
server.default_listen_address=127.0.0.1
server.bolt.listen_address=127.0.0.1:$bolt_port
server.bolt.advertised_address=127.0.0.1:$bolt_port
server.http.listen_address=127.0.0.1:$http_port
server.http.advertised_address=127.0.0.1:$http_port
server.https.enabled=false
dbms.security.auth_enabled=true
dbms.usage_report.enabled=false
server.directories.data=$dir/data
server.directories.logs=$dir/logs
server.directories.plugins=$dir/plugins
server.directories.import=$dir/import
server.directories.run=$dir/run
CONF
    if [ -n "$neo4j_heap" ]; then
        printf 'server.memory.heap.max_size=%s\nserver.memory.pagecache.size=%s\n' \
            "$neo4j_heap" "$neo4j_pagecache" >>"$dir/conf/neo4j.conf"
    fi
}

neo4j_up() {
    local dir="$servers/neo4j" lib
    if alive neo4j && port_open "$bolt_port"; then log "neo4j already up on 127.0.0.1:$bolt_port"; return; fi
    port_open "$bolt_port" && die "port $bolt_port is taken by another process"
    lib=$(fetch neo4j)
    mkdir -p "$dir/conf" "$dir/data" "$dir/logs" "$dir/plugins" "$dir/import" "$dir/run"
    write_neo4j_conf "$dir"  # where the data is, for the memory recommendation to measure
    neo4j_sizing "$lib" "$dir"
    write_neo4j_conf "$dir"
    export NEO4J_HOME="$dir" NEO4J_CONF="$dir/conf"
    if [ ! -f "$dir/data/dbms/auth.ini" ]; then
        java -cp "$lib/*" org.neo4j.cli.AdminTool dbms set-initial-password "$(neo4j_password)" >&2
    fi
    log "starting neo4j on bolt 127.0.0.1:$bolt_port, http 127.0.0.1:$http_port"
    # The JVM as Neo4j's own launcher starts it: the whole heap from the start (a heap that
    # starts small keeps a small young generation, collected every second or two under
    # queries), pre-touched, explicit GCs ignored, and each collection's pause in logs/gc.log.
    nohup java "-Xms$neo4j_heap" "-Xmx$neo4j_heap" -XX:+UseG1GC -XX:+AlwaysPreTouch \
        -XX:+DisableExplicitGC -XX:-OmitStackTraceInFastThrow -Djdk.nio.maxCachedBufferSize=1024 \
        "-Xlog:gc:file=$dir/logs/gc.log:time,uptime:filecount=4,filesize=20m" \
        -Djava.awt.headless=true \
        --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
        --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
        --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED \
        --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
        -cp "$lib/*" org.neo4j.server.CommunityEntryPoint --home-dir="$dir" --config-dir="$dir/conf" \
        >"$dir/logs/stdout.log" 2>&1 </dev/null &
    echo $! >"$dir/neo4j.pid"
    wait_until neo4j 180 neo4j_ready
    log "neo4j up: bolt://127.0.0.1:$bolt_port, Browser http://127.0.0.1:$http_port/browser/"
}

# ---------------------------------------------------------------- commands

status_of() {
    local name=$1 port=$2 state=down
    alive "$name" && state="up (pid $(pid_of "$name"))"
    if ! alive "$name" && port_open "$port"; then state="port taken by another process"; fi
    printf '%-6s %-28s 127.0.0.1:%s\n' "$name" "$state" "$port"
}

main() {
    local cmd=${1:-}
    [ -n "$cmd" ] || { usage >&2; exit 2; }
    shift || true
    local names=("$@")
    [ ${#names[@]} -gt 0 ] || names=(kafka neo4j)
    for name in "${names[@]}"; do
        case $name in kafka | neo4j) ;; *) die "unknown server '$name' (kafka or neo4j)" ;; esac
    done
    case $cmd in
    up) for n in "${names[@]}"; do "${n}_up"; done ;;
    down) for n in "${names[@]}"; do stop "$n"; done ;;
    restart) for n in "${names[@]}"; do stop "$n"; "${n}_up"; done ;;
    status)
        for n in "${names[@]}"; do
            if [ "$n" = kafka ]; then status_of kafka "$kafka_port"; else status_of neo4j "$bolt_port"; fi
        done
        if [ -f "$servers/neo4j/conf/neo4j.conf" ] && [[ " ${names[*]} " == *" neo4j "* ]]; then
            sed -n 's/^server.memory.\(heap.max_size\|pagecache.size\)=/neo4j  \1 /p' \
                "$servers/neo4j/conf/neo4j.conf"
        fi
        ;;
    reset) for n in "${names[@]}"; do stop "$n"; rm -rf "${servers:?}/$n"; log "deleted $servers/$n"; done ;;
    password) neo4j_password ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
    esac
}

main "$@"
