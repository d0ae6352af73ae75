package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/hasup/hasup"
)

// TLSConfig names the PEM files of the TCP transport's mutual TLS; set it
// as Config.TLS. All three files are required. Listen (and Validate) read
// them once: certificates are not reloaded, so a renewed certificate takes
// effect when the transport is restarted.
//
// Every node's certificate must carry the node's ID as a DNS SAN, matched
// exactly (no wildcard, no case folding, so that one certificate cannot
// speak for a set of nodes; the CommonName is ignored), and must allow
// both server and client authentication (extended key usages serverAuth
// and clientAuth, or none), because every node both dials and accepts.
// The CA may be private to the cluster.
//
// Rejected alternative: a ready *tls.Config. It would be a second way to
// say the same thing, with precedence rules, and one in which a caller can
// silently drop client-certificate verification or the identity check;
// tests and embedders write PEM files to a temporary directory instead.
type TLSConfig struct {
	// CertFile is the path of this node's PEM certificate, optionally
	// followed by intermediates, presented when dialing and when accepting.
	// It must name the node's ID as a DNS SAN.
	CertFile string
	// KeyFile is the path of CertFile's PEM private key (PKCS #1, PKCS #8
	// or SEC 1).
	KeyFile string
	// CAFile is the path of the PEM bundle of CA certificates that peers'
	// certificates must chain to, both ways.
	CAFile string
}

// tlsState is a loaded TLSConfig: the settings of both ends of a
// connection.
type tlsState struct {
	server *tls.Config
	client *tls.Config // without ServerName; see clientFor
}

// load reads and checks c's files for node id. A nil c means plain TCP
// and loads nothing. Every error wraps ErrInvalidConfig and names the file
// (or the empty field) and the problem.
func (c *TLSConfig) load(id hasup.NodeID) (*tlsState, error) {
	if c == nil {
		return nil, nil
	}
	for _, f := range []struct{ field, path string }{{"CertFile", c.CertFile}, {"KeyFile", c.KeyFile}, {"CAFile", c.CAFile}} {
		if f.path == "" {
			return nil, fmt.Errorf("%w: TLS.%s is empty: mutual TLS needs CertFile, KeyFile and CAFile", ErrInvalidConfig, f.field)
		}
	}
	certPEM, err := readFile("cert", c.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFile("key", c.KeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := readFile("CA", c.CAFile)
	if err != nil {
		return nil, err
	}
	chain, err := parseCertificates(certPEM)
	if err != nil {
		return nil, fileError("cert", c.CertFile, err)
	}
	if !hasPrivateKeyBlock(keyPEM) {
		return nil, fileError("key", c.KeyFile, errors.New("no PEM private key"))
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fileError("key", c.KeyFile, fmt.Errorf("does not fit cert file %q: %w", c.CertFile, err))
	}
	if !namesNode(chain[0], id) {
		return nil, fileError("cert", c.CertFile, fmt.Errorf("no DNS SAN is the node ID %q (DNS SANs %q)", id, chain[0].DNSNames))
	}
	cas, err := parseCertificates(caPEM)
	if err != nil {
		return nil, fileError("CA", c.CAFile, err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return &tlsState{
		server: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{pair},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			// No resumption: every connection is verified in full, and
			// the acceptor never writes after the handshake.
			SessionTicketsDisabled: true,
		},
		client: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{pair},
			RootCAs:      pool,
		},
	}, nil
}

// clientFor returns the client settings for dialing peer: the server's
// certificate must chain to the CAs and name peer, so that an address that
// now belongs to another node (a stale SetPeer, a mis-routed DNS name)
// cannot stand in for peer. ServerName makes crypto/tls check the name
// (case-insensitively, wildcards allowed); VerifyConnection then applies
// namesNode, the exact rule the acceptor uses.
func (s *tlsState) clientFor(peer hasup.NodeID) *tls.Config {
	c := s.client.Clone()
	c.ServerName = string(peer)
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if leaf := cs.PeerCertificates[0]; !namesNode(leaf, peer) {
			return fmt.Errorf("transport: server certificate names %q, not node %q", leaf.DNSNames, peer)
		}
		return nil
	}
	return c
}

// namesNode is the identity rule: cert speaks for node id only if one of
// its DNS SANs equals id exactly. The CommonName is ignored, as crypto/tls
// ignores it for host names, so that both ends apply one rule; wildcards
// and case folding are not applied, so that a certificate names a set of
// nodes only by listing them.
func namesNode(cert *x509.Certificate, id hasup.NodeID) bool {
	return slices.Contains(cert.DNSNames, string(id))
}

// clientHandshake runs the TLS handshake on raw, an outgoing connection to
// peer at addr, bounded by DialTimeout and by the transport's life. A
// failure is counted in Rejected and logged. The caller closes raw on
// error.
//
// In TLS 1.3 the client finishes before the server has checked the client
// certificate: a server that refuses this node's certificate is seen only
// as a broken connection, by the watcher.
func (t *TCP) clientHandshake(raw net.Conn, peer hasup.NodeID, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(t.ctx, t.cfg.DialTimeout)
	defer cancel()
	tc := tls.Client(raw, t.tls.clientFor(peer))
	if err := tc.HandshakeContext(ctx); err != nil {
		t.reject("tls handshake failed", "peer", peer, "addr", addr, "err", err)
		return nil, err
	}
	return tc, nil
}

// serverHandshake runs the TLS handshake on c, an incoming connection,
// within c's deadline, and returns the connection to read and the peer's
// verified certificate. With TLS off it returns c and a nil certificate. A
// failure is logged and, unless the peer closed before sending anything
// (a port probe, as plain TCP tolerates), counted in Rejected; ok false
// means drop c.
func (t *TCP) serverHandshake(c net.Conn) (conn net.Conn, cert *x509.Certificate, ok bool) {
	if t.tls == nil {
		return c, nil, true
	}
	tc := tls.Server(c, t.tls.server)
	if err := tc.Handshake(); err != nil {
		if errors.Is(err, io.EOF) {
			t.log.Debug("incoming connection ended", "remote", c.RemoteAddr().String(), "err", err)
		} else {
			t.reject("tls handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
		return nil, nil, false
	}
	return tc, tc.ConnectionState().PeerCertificates[0], true
}

// checkIdentity reports whether cert, the certificate of incoming
// connection c (nil with TLS off), speaks for from, the ID its hello
// claimed. If not, it counts the connection in Rejected and logs it.
func (t *TCP) checkIdentity(c net.Conn, cert *x509.Certificate, from hasup.NodeID) bool {
	if cert == nil || namesNode(cert, from) {
		return true
	}
	t.reject("hello node ID not named by peer certificate, connection dropped",
		"claimed", from, "names", cert.DNSNames, "remote", c.RemoteAddr().String())
	return false
}

// reject counts and logs a connection refused by TLS, unless the
// transport is closing (which fails handshakes in progress).
func (t *TCP) reject(msg string, args ...any) {
	if t.ctx.Err() != nil {
		return
	}
	t.stats.rejected.Add(1)
	t.log.Warn(msg, args...)
}

// readFile reads the TLS file of the given kind.
func readFile(kind, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is in fileError's message already
		}
		return nil, fileError(kind, path, err)
	}
	return b, nil
}

func fileError(kind, path string, err error) error {
	return fmt.Errorf("%w: TLS %s file %q: %w", ErrInvalidConfig, kind, path, err)
}

// parseCertificates returns the certificates in PEM data, in order,
// skipping blocks of other types; none is an error.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// hasPrivateKeyBlock reports whether PEM data holds a private key block, so
// that a garbage key file is told apart from a key that does not fit.
func hasPrivateKeyBlock(data []byte) bool {
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return false
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return true
		}
	}
}
