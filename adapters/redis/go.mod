module github.com/runtimeid/runtimeid/adapters/redis

go 1.26.0

require github.com/runtimeid/runtimeid v0.0.0

replace github.com/runtimeid/runtimeid => ../..
