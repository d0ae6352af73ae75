package api

// The JSON shapes of the contract, shared by the server and the Client.

// Health is the answer to GET /v1/health.
type Health struct {
	// Status is "ok" whenever the agent answers.
	Status string `json:"status"`
	// Node is the answering node's name.
	Node string `json:"node"`
	// Registry reports whether the node has read the cluster registry: the
	// cluster has formed and this node follows it.
	Registry bool `json:"registry"`
}

// Member is one node as failure detection sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is the node's consensus transport address, host:port.
	Addr string `json:"addr"`
	// Status is "alive", "suspect", "failed" or "left".
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
}

// Ensemble describes one ensemble (see the package doc for where each field
// comes from).
type Ensemble struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Replicas int    `json:"replicas"`
	Epoch    uint64 `json:"epoch"`
	View     uint64 `json:"view"`
	// Primary is the primary's node name, "" if no member answered.
	Primary string `json:"primary"`
	// Members are the node names of the ensemble's members, in order.
	Members []string `json:"members"`
	Commit  uint64   `json:"commit"`
}

// EnsembleSpec is the body of POST /v1/ensembles.
type EnsembleSpec struct {
	// Name: an RFC 1123 DNS label, at most 63 bytes.
	Name string `json:"name"`
	// Type: "kv", "lock" or an FSM type the agent registers.
	Type string `json:"type"`
	// Replicas: 1, 3 or 5; 0 means 3.
	Replicas int `json:"replicas,omitempty"`
	// Constraints on the nodes' tags: "key=value", "key!=value", "key",
	// "!key".
	Constraints []string `json:"constraints,omitempty"`
}

// KV is one entry of a kv list.
type KV struct {
	Key string `json:"key"`
	// Value is the value; in JSON, standard base64.
	Value []byte `json:"value"`
	// Revision is the key's ModRevision, what ?cas= compares.
	Revision uint64 `json:"revision"`
}

// lockRequest is the body of POST /v1/lock/{ensemble}/{name}.
type lockRequest struct {
	Owner string `json:"owner"`
	// TTL is a Go duration ("30s"), more than 0 and at most lock.MaxTTL.
	TTL string `json:"ttl"`
}

// revisionReply answers a kv write.
type revisionReply struct {
	Revision uint64 `json:"revision"`
}

// fenceReply answers a lock acquire.
type fenceReply struct {
	Fence uint64 `json:"fence"`
}

// Headers of the contract.
const (
	headerRevision = "X-Hasup-Revision"
	headerMore     = "X-Hasup-More"
)
