package stepup

import (
	"log/slog"

	"github.com/runtimeid/runtimeid"
)

const (
	levelInfo = slog.LevelInfo
	levelWarn = slog.LevelWarn
)

// identityAttr names who, never a claim's value beyond the names.
func identityAttr(id *runtimeid.Identity) slog.Attr {
	return slog.Any("identity", id)
}

func strAttr(k, v string) slog.Attr { return slog.String(k, v) }
