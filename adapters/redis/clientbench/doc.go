// Package clientbench compares the two Go Redis clients on the
// operations the Redis store uses: SET NX PX (replay), a pipelined batch
// of HSET+PEXPIRE (baseline flush) and a PUBLISH received by a
// subscriber (invalidation). It is a separate module so the store's
// users never download the client it did not pick.
//
//	redis-server --port 6390 --save '' --appendonly no --daemonize yes
//	RUNTIMEID_REDIS_ADDR=127.0.0.1:6390 GOWORK=off go test -bench . -benchmem
package clientbench
