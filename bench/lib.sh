# Shell helpers of bench/run.sh and bench/cluster.sh; sourced from the
# repository's root.

# free_port picks an unused loopback port below the ephemeral range (so no
# client socket holds it), checked with bash's /dev/tcp: refused = free.
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# wait_port PORT: returns once something listens on 127.0.0.1:PORT, or
# fails after 10 s.
wait_port() {
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "nothing listens on port $1" >&2
	return 1
}
