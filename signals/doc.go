// Package signals holds the standard [runtimeid.SignalCollector]
// implementations: the client's address through trusted proxies
// ([ClientIP]), where that address is ([GeoIP], from MaxMind databases),
// what software sent the request ([Device], from the user agent and
// client hints), and which browser it is ([DeviceID], a signed cookie).
//
// Each collector reads what the engine and earlier collectors put in
// [runtimeid.Evaluation.Signals] and fills its own part. Order them as
// ClientIP, GeoIP, Device, DeviceID in [runtimeid.Config.Collectors]:
// GeoIP reads the address ClientIP found.
//
// For an action that is not an HTTP request ([runtimeid.Engine.Evaluate])
// the request is nil, and each collector works from what the caller put
// in the evaluation's ClientIP and UserAgent.
//
// Every collector is safe for concurrent use and does no I/O per call.
package signals
