package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mcpadapter "github.com/runtimeid/runtimeid/adapters/mcp"
)

func TestAgentIsThrottledChallengedAndBlocked(t *testing.T) {
	var out bytes.Buffer
	steps, err := run(context.Background(), &out)
	require.NoError(t, err, out.String())

	byName := map[string][]Step{}
	for _, st := range steps {
		byName[st.Name] = append(byName[st.Name], st)
	}

	// 1. The baseline: every call allowed with its 20 orders.
	require.Len(t, byName["baseline"], 30)
	for _, st := range byName["baseline"] {
		assert.Equal(t, Step{Name: "baseline", Tool: "list_orders",
			Status: http.StatusOK, Items: 20}, st)
	}

	// 2. The burst: allowed until the decayed rate reaches 30 a minute.
	burst := byName["burst"]
	require.Len(t, burst, 52)
	for _, st := range burst[:51] {
		assert.Equal(t, 0, int(st.Code))
	}
	assert.Equal(t, Step{Name: "burst", Tool: "list_orders",
		Status: http.StatusTooManyRequests, Code: mcpadapter.CodeThrottled,
		Reason: "agent_rate_high"}, burst[51])

	// 3. The export: challenged, for alice to approve.
	ex := byName["export"][0]
	assert.Equal(t, http.StatusUnauthorized, ex.Status)
	assert.Equal(t, int64(mcpadapter.CodeStepUpRequired), ex.Code)
	assert.Equal(t, "agent_scope_drift", ex.Reason)
	assert.Equal(t, `Bearer realm="shop", error="insufficient_user_authentication", `+
		`error_description="step-up authentication required: agent_scope_drift", `+
		`acr_values="urn:runtimeid:acr:human-approval", max_age=300`, ex.WWWAuthenticate)
	assert.True(t, strings.HasPrefix(ex.Approval, "apr_"))

	// Approved, the retry runs once.
	assert.Equal(t, Step{Name: "export-approved", Tool: "export_customers",
		Status: http.StatusOK, Items: 5000}, byName["export-approved"][0])

	// 4. Again: 5000 records against a baseline of 120 a window.
	assert.Equal(t, Step{Name: "export-again", Tool: "export_customers",
		Status: http.StatusOK, Code: mcpadapter.CodeBlocked,
		Reason: "agent_volume_spike"}, byName["export-again"][0])

	audit := out.String()[strings.Index(out.String(), "audit trail"):]
	// One audit line per refusal or approval, each split in two here.
	want := "audit trail (refusals and approvals):\n" +
		"  block     rule=throttle-agent-rate reason=agent_rate_high " +
		"action=list_orders sub=alice act=agent-7 findings=[agent_rate_high]\n" +
		"  challenge rule=approve-agent-scope-drift-high reason=agent_scope_drift " +
		"action=export_customers sub=alice act=agent-7 findings=[agent_scope_drift]\n" +
		"  allow     rule=approve-agent-scope-drift-high reason=agent_scope_drift " +
		"action=export_customers sub=alice act=agent-7 findings=[agent_scope_drift]\n" +
		"  block     rule=block-agent-volume-spike reason=agent_volume_spike " +
		"action=export_customers sub=alice act=agent-7 " +
		"findings=[agent_volume_spike agent_scope_drift]\n"
	assert.Equal(t, want, audit)
}
