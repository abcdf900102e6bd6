package berth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/berthbuild/berth/pkg/engine"
)

// certs writes a CA and a certificate it signed, for server or client use.
type certs struct{ dir string }

func (c certs) path(n string) string { return filepath.Join(c.dir, n) }

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t *testing.T, dir, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+"-ca.pem"), "CERTIFICATE", der)
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

func leaf(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
		DNSNames: []string{"buildkitd.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	kb, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kb)
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRemoteTLS starts a buildkitd listening on 127.0.0.1 with mutual TLS,
// builds through it, and connects with a client certificate of another
// CA, which must be refused.
func TestRemoteTLS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs buildkitd, which needs root here; run it as root (CI does)")
	}
	dir := t.TempDir()
	ca, caKey := newCA(t, dir, "good")
	leaf(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	leaf(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	bad, badKey := newCA(t, dir, "bad")
	leaf(t, dir, "intruder", bad, badKey, x509.ExtKeyUsageClientAuth)

	root, err := os.MkdirTemp("", "bkt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	addr := freePort(t)
	cmd := exec.Command(testEngine(t).Buildkitd, "--root", root, "--addr", "tcp://"+addr,
		"--addr", "unix://"+filepath.Join(root, "s.sock"),
		"--tlscacert", filepath.Join(dir, "good-ca.pem"), "--tlscert", filepath.Join(dir, "server.pem"), "--tlskey", filepath.Join(dir, "server-key.pem"),
		"--oci-worker=true", "--containerd-worker=false")
	logf, _ := os.Create(filepath.Join(root, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	good := engine.Options{Builder: "tcp://" + addr, TLSCACert: filepath.Join(dir, "good-ca.pem"),
		TLSCert: filepath.Join(dir, "client.pem"), TLSKey: filepath.Join(dir, "client-key.pem"), TLSServerName: "buildkitd.test"}
	var e *engine.Engine
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e, err = engine.Connect(ctx, good)
		cancel()
		if err == nil {
			break
		}
		if i > 100 {
			b, _ := os.ReadFile(filepath.Join(root, "log"))
			t.Fatalf("connect with TLS: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if e.Kind != engine.Remote || e.Platform.OS != "linux" {
		t.Errorf("engine %+v", e)
	}
	e.Close()

	// Build through it.
	project := copyTree(t, "../../examples/hello")
	res, _ := build(t, project, func(o *BuildOptions) { o.Engine = good })
	img := image(t, res.Layout, "hello:0.0.0-dev", "linux/amd64")
	fileIn(t, img, "/hello")

	// The same builder from the config's builders block, TLS files
	// relative to the config's directory.
	fromConfig := copyTree(t, "../../examples/hello")
	for _, f := range []string{"good-ca.pem", "client.pem", "client-key.pem"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fromConfig, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(t, filepath.Join(fromConfig, "berth.cue"), `
builders: default: {address: "tcp://`+addr+`", tls: {ca: "good-ca.pem", cert: "client.pem", key: "client-key.pem", serverName: "buildkitd.test"}}
`)
	var via sync.Map
	res2, _ := build(t, fromConfig, func(o *BuildOptions) {
		o.Engine = engine.Options{}
		o.BuilderStatus = func(b string, _ *client.SolveStatus) { via.Store(b, true) }
	})
	via.Range(func(k, _ any) bool {
		if k != "tcp://"+addr {
			t.Errorf("built on %v, not on the config's builder tcp://%s", k, addr)
		}
		return true
	})
	if _, ok := via.Load("tcp://" + addr); !ok {
		t.Error("nothing was built on the config's builder")
	}
	if res2.Images[0].Digest != res.Images[0].Digest {
		t.Errorf("through the config's builder: %s, through the flags: %s", res2.Images[0].Digest, res.Images[0].Digest)
	}

	wrong := good
	wrong.TLSCert, wrong.TLSKey = filepath.Join(dir, "intruder.pem"), filepath.Join(dir, "intruder-key.pem")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err = engine.Connect(ctx, wrong)
	if err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	t.Logf("wrong certificate: %v", err)
	if !strings.Contains(err.Error(), "tcp://"+addr) {
		t.Errorf("the error does not name the builder: %v", err)
	}
}
