package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup/config"
)

// writeCerts writes a CA and a certificate for node (DNS SAN node, IP SAN
// 127.0.0.1) under dir, and returns the three paths.
func writeCerts(t *testing.T, dir, node string) (cert, key, ca string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hasup test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: node},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{node},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(nodeKey)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("node.pem", "CERTIFICATE", der), write("node-key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

func TestAgentServesTheAPIOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("runs an agent")
	}
	dir := t.TempDir()
	cert, key, ca := writeCerts(t, dir, "tls1")
	cfg := config.Default()
	cfg.NodeName, cfg.DataDir, cfg.BindAddr, cfg.SerfPort, cfg.RPCPort = "tls1", filepath.Join(dir, "data"), "127.0.0.1", 0, 0
	cfg.HTTPAddr, cfg.Profile, cfg.BootstrapExpect = "127.0.0.1:0", config.ProfileLocal, 1
	cfg.TLS = config.TLS{CertFile: cert, KeyFile: key, CAFile: ca}
	cfg.Ensembles = []config.Ensemble{{Name: "orders", Type: "kv", Replicas: 1}}
	a, err := newAgent(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	t.Setenv("HASUP_HTTP_ADDR", "https://"+a.http.Addr().String())
	t.Setenv("HASUP_CACERT", ca)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, e := cli(t, "kv", "put", "orders", "k", "over-tls")
		if code == exitOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kv put over TLS: %d %q", code, e)
		}
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
	if code, o, _ := cli(t, "kv", "get", "orders", "k"); code != exitOK || o != "over-tls\n" {
		t.Fatalf("kv get over TLS: %d %q", code, o)
	}
	// Without the CA the client refuses the agent's certificate.
	t.Setenv("HASUP_CACERT", "")
	if code, _, e := cli(t, "kv", "get", "orders", "k"); code == exitOK || !strings.Contains(e, "certificate") {
		t.Fatalf("a client without the CA: %d %q", code, e)
	}
}
