package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hasup/hasup"
	"github.com/hasup/hasup/ensemble"
)

// testCA is a certificate authority made for one test, its files in a
// temporary directory.
type testCA struct {
	name   string
	dir    string
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	file   string // the CA certificate, PEM
	serial int64
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{name: name, dir: t.TempDir(), cert: cert, key: key, serial: 1}
	ca.file = ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

// issue returns TLS files for a node certificate with the given DNS SANs
// (the first also its CommonName), trusting this CA.
func (ca *testCA) issue(t testing.TB, names ...hasup.NodeID) *TLSConfig {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial),
		Subject:      pkix.Name{CommonName: string(names[0])},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, n := range names {
		tmpl.DNSNames = append(tmpl.DNSNames, string(n))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.Join([]string{string(names[0]), big.NewInt(ca.serial).String()}, "-")
	return &TLSConfig{
		CertFile: ca.write(t, base+".crt", "CERTIFICATE", der),
		KeyFile:  ca.write(t, base+".key", "PRIVATE KEY", keyDER),
		CAFile:   ca.file,
	}
}

func (ca *testCA) write(t testing.TB, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(ca.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsTestConfig is testConfig with TLS files for id from ca.
func tlsTestConfig(t testing.TB, id hasup.NodeID, ca *testCA) Config {
	c := testConfig(id)
	c.TLS = ca.issue(t, id)
	return c
}

// rawTLSConn dials tr as a raw TLS client with files f, expecting the
// server to be node server, and writes b. Unlike the transport, it
// presents its certificate even when the server's list of acceptable CAs
// does not include its issuer, so that the server's verification is what
// refuses it.
func rawTLSConn(t *testing.T, tr *TCP, f *TLSConfig, server hasup.NodeID, b []byte) net.Conn {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(f.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	c, err := tls.Dial("tcp", tr.Addr(), &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil },
		RootCAs:              pool,
		ServerName:           string(server),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSExchangeBothWays(t *testing.T) {
	checkNoLeaks(t)
	ca := newTestCA(t, "cluster")
	a := listen(t, tlsTestConfig(t, "a", ca))
	b := listen(t, tlsTestConfig(t, "b", ca))
	a.SetPeer("b", b.Addr())
	b.SetPeer("a", a.Addr())
	const count = 20 // includes large messages (see msg)
	for op := uint64(1); op <= count; op++ {
		a.Send(msg("a", "b", op))
		b.Send(msg("b", "a", op))
	}
	for _, tc := range []struct {
		from, to hasup.NodeID
		tr       *TCP
	}{{"a", "b", b}, {"b", "a", a}} {
		for i, got := range receive(t, tc.tr.Receive(), count) {
			if want := msg(tc.from, tc.to, uint64(i+1)); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s got %v, want %v", tc.to, got, want)
			}
		}
	}
	for _, tr := range []*TCP{a, b} {
		if s := tr.Stats(); s.Rejected != 0 || s.Malformed != 0 {
			t.Errorf("stats %+v", s)
		}
	}
}

// TestTLSRefusesCertificateFromAnotherCA uses a node x whose certificate
// comes from another CA but which trusts the cluster's CA: so x itself
// accepts a's certificate, and only a's own checks can refuse x. (As a
// client, x finds its certificate is not from a CA that a asks for and
// sends none; the raw client sends it anyway.)
func TestTLSRefusesCertificateFromAnotherCA(t *testing.T) {
	checkNoLeaks(t)
	ca, other := newTestCA(t, "cluster"), newTestCA(t, "other")
	a := listen(t, tlsTestConfig(t, "a", ca))
	cfgX := testConfig("x")
	cfgX.TLS = other.issue(t, "x")
	cfgX.TLS.CAFile = ca.file
	x := listen(t, cfgX)

	t.Run("as dialer", func(t *testing.T) {
		x.SetPeer("a", a.Addr())
		op := uint64(0)
		waitFor(t, "a to reject x's certificate", func() bool {
			op++
			x.Send(msg("x", "a", op))
			return a.Stats().Rejected > 0
		})
		expectNothing(t, a.Receive())
		if s := a.Stats(); s.Received != 0 {
			t.Errorf("a stats %+v", s)
		}
	})
	t.Run("as acceptor", func(t *testing.T) {
		before := a.Stats().Rejected
		a.SetPeer("x", x.Addr())
		a.Send(msg("a", "x", 1))
		waitFor(t, "a to reject x's server certificate", func() bool { return a.Stats().Rejected > before })
		expectNothing(t, x.Receive())
		if s := x.Stats(); s.Received != 0 {
			t.Errorf("x stats %+v", s)
		}
	})
	t.Run("raw client presenting it", func(t *testing.T) {
		before := a.Stats().Rejected
		filesX := other.issue(t, "x")
		filesX.CAFile = ca.file
		conn := rawTLSConn(t, a, filesX, "a", concat(hello("x"), msgFrame(msg("x", "a", 1))))
		expectClosedByPeer(t, conn)
		waitFor(t, "Rejected to grow", func() bool { return a.Stats().Rejected > before })
		expectNothing(t, a.Receive())
	})
}

func TestTLSRefusesHelloNotNamedByCertificate(t *testing.T) {
	checkNoLeaks(t)
	ca := newTestCA(t, "cluster")
	c := listen(t, tlsTestConfig(t, "c", ca))
	filesB := ca.issue(t, "b")

	conn := rawTLSConn(t, c, filesB, "c", concat(hello("a"), msgFrame(msg("a", "c", 1))))
	expectClosedByPeer(t, conn)
	waitFor(t, "Rejected to grow", func() bool { return c.Stats().Rejected == 1 })
	expectNothing(t, c.Receive())

	// The same certificate saying hello as the node it names gets through.
	rawTLSConn(t, c, filesB, "c", concat(hello("b"), msgFrame(msg("b", "c", 1))))
	if got := receive(t, c.Receive(), 1)[0]; got.From != "b" {
		t.Fatalf("got %v", got)
	}
	if s := c.Stats(); s.Rejected != 1 || s.Malformed != 0 || s.Received != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestTLSDialerRefusesServerNotNamedPeer: a's entry for a peer points at
// c, a node of the same cluster; a must not take c for that peer, even
// where crypto/tls's host name rules (wildcards, any case) would.
func TestTLSDialerRefusesServerNotNamedPeer(t *testing.T) {
	checkNoLeaks(t)
	ca := newTestCA(t, "cluster")
	cfgC := testConfig("c")
	cfgC.TLS = ca.issue(t, "c", "*.nodes")
	c := listen(t, cfgC)
	for _, peer := range []hasup.NodeID{"b", "b.nodes", "C"} {
		t.Run(string(peer), func(t *testing.T) {
			a := listen(t, tlsTestConfig(t, "a", ca))
			a.SetPeer(peer, c.Addr())
			a.Send(msg("a", peer, 1))
			waitFor(t, "a to reject c's certificate", func() bool { return a.Stats().Rejected > 0 })
			if s := c.Stats(); s.Received != 0 || s.Malformed != 0 {
				t.Errorf("c stats %+v", s)
			}
			expectNothing(t, c.Receive())
		})
	}
}

func TestTLSListenerRefusesPlainTCPAndStaysResponsive(t *testing.T) {
	checkNoLeaks(t)
	ca := newTestCA(t, "cluster")
	cfgA := tlsTestConfig(t, "a", ca)
	cfgA.DialTimeout = 300 * time.Millisecond
	a := listen(t, cfgA)
	idle := rawConn(t, a, nil) // says nothing: stuck in the handshake

	plain := listen(t, testConfig("p"))
	plain.SetPeer("a", a.Addr())
	plain.Send(msg("p", "a", 1))
	waitFor(t, "a to reject the plain dialer", func() bool { return a.Stats().Rejected > 0 })

	b := listen(t, tlsTestConfig(t, "b", ca))
	b.SetPeer("a", a.Addr())
	b.Send(msg("b", "a", 1))
	if got := receive(t, a.Receive(), 1)[0]; got.From != "b" {
		t.Fatalf("got %v, want the message from b", got)
	}
	expectClosedByPeer(t, idle) // by the handshake deadline

	// Close is prompt with a connection in the middle of a handshake.
	rawConn(t, a, []byte{0x16, 3, 1})
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	if s := a.Stats(); s.Received != 1 || s.Malformed != 0 {
		t.Errorf("a stats %+v, want only b's message received", s)
	}
}

func TestTLSConfigErrorsNameTheFile(t *testing.T) {
	ca := newTestCA(t, "cluster")
	good := ca.issue(t, "a")
	otherKey := ca.issue(t, "a").KeyFile
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	with := func(edit func(f *TLSConfig)) *TLSConfig {
		f := *good
		edit(&f)
		return &f
	}
	for _, tc := range []struct {
		name  string
		files *TLSConfig
		want  []string // substrings of the error
	}{
		{"missing cert file", with(func(f *TLSConfig) { f.CertFile = missing }), []string{"cert file", missing, "no such file"}},
		{"missing key file", with(func(f *TLSConfig) { f.KeyFile = missing }), []string{"key file", missing, "no such file"}},
		{"missing CA file", with(func(f *TLSConfig) { f.CAFile = missing }), []string{"CA file", missing, "no such file"}},
		{"garbage cert", with(func(f *TLSConfig) { f.CertFile = garbage }), []string{"cert file", garbage, "no PEM certificate"}},
		{"garbage key", with(func(f *TLSConfig) { f.KeyFile = garbage }), []string{"key file", garbage, "no PEM private key"}},
		{"garbage CA", with(func(f *TLSConfig) { f.CAFile = garbage }), []string{"CA file", garbage, "no PEM certificate"}},
		{"key file as CA", with(func(f *TLSConfig) { f.CAFile = good.KeyFile }), []string{"CA file", good.KeyFile, "no PEM certificate"}},
		{"mismatched key", with(func(f *TLSConfig) { f.KeyFile = otherKey }), []string{"key file", otherKey, good.CertFile, "does not match"}},
		{"no cert file", with(func(f *TLSConfig) { f.CertFile = "" }), []string{"TLS.CertFile is empty"}},
		{"no key file", with(func(f *TLSConfig) { f.KeyFile = "" }), []string{"TLS.KeyFile is empty"}},
		{"no CA file", with(func(f *TLSConfig) { f.CAFile = "" }), []string{"TLS.CAFile is empty"}},
		{"cert for another node", ca.issue(t, "b"), []string{"cert file", "node ID \"a\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("a")
			cfg.TLS = tc.files
			err := cfg.Validate()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if tr, err2 := Listen(cfg); err2 == nil || err2.Error() != err.Error() {
				if tr != nil {
					tr.Close()
				}
				t.Errorf("Listen = %v, want Validate's error", err2)
			}
		})
	}
	cfg := testConfig("a")
	cfg.TLS = with(func(f *TLSConfig) { f.CertFile = missing })
	if err := cfg.Validate(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v does not wrap fs.ErrNotExist", err)
	}
	cfg.TLS = good
	if err := cfg.Validate(); err != nil {
		t.Errorf("good files: %v", err)
	}
}

// BenchmarkTCPRoundTrip measures one small message from a to b and b's
// reply, over warm connections, plain and with TLS.
func BenchmarkTCPRoundTrip(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchRoundTrip(b, testConfig("a"), testConfig("b")) })
	b.Run("tls", func(b *testing.B) {
		ca := newTestCA(b, "cluster")
		benchRoundTrip(b, tlsTestConfig(b, "a", ca), tlsTestConfig(b, "b", ca))
	})
}

func benchRoundTrip(b *testing.B, cfgA, cfgB Config) {
	ta, err := Listen(cfgA)
	if err != nil {
		b.Fatal(err)
	}
	defer ta.Close()
	tb, err := Listen(cfgB)
	if err != nil {
		b.Fatal(err)
	}
	defer tb.Close()
	ta.SetPeer("b", tb.Addr())
	tb.SetPeer("a", ta.Addr())
	go func() { // b echoes until closed
		for m := range tb.Receive() {
			m.From, m.To = "b", "a"
			tb.Send(m)
		}
	}()
	ping := ensemble.Message{Type: ensemble.MsgCommit, Ensemble: "e1", From: "a", To: "b", View: 1}
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	roundTrip := func() {
		timeout.Reset(waitTimeout)
		ta.Send(ping)
		select {
		case <-ta.Receive():
		case <-timeout.C:
			b.Fatalf("no reply in %v: a %+v, b %+v", waitTimeout, ta.Stats(), tb.Stats())
		}
	}
	roundTrip() // dial (and handshake) both ways before timing
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
}
