package berth

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthbuild/berth/pkg/llbgen"
)

// TestSecretsDoNotLeak builds with two secrets (one from the environment,
// one from a file) and searches every output for their values: layers,
// image configs, the OCI layout, binaries, bundles, generated files, the
// progress logs and the LLB definition (the cache keys). The secrets must
// be mounted into the module download step, and found nowhere else.
func TestSecretsDoNotLeak(t *testing.T) {
	envSecret := "env-secret-" + randHex(t)
	fileSecret := "machine proxy.example login u password file-secret-" + randHex(t)
	dir := copyTree(t, "../../examples/hello")
	if err := os.WriteFile(filepath.Join(dir, "netrc"), []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "berth.cue")
	src, _ := os.ReadFile(cfg)
	src = bytes.Replace(src, []byte(`args: ["berth user"]`), []byte(`args: ["berth user"]
	secrets: {
		token: env: "BERTH_TEST_TOKEN"
		netrc: file: "netrc"
	}`), 1)
	os.WriteFile(cfg, src, 0o644)
	env := testEnv(map[string]string{"BERTH_TEST_TOKEN": envSecret})

	var logs bytes.Buffer
	var mu sync.Mutex
	res, err := Build(context.Background(), BuildOptions{
		Options: Options{Dir: dir, Env: env}, Engine: testEngine(t), Progress: "quiet",
		OCIArchive: true,
		Status: func(s *client.SolveStatus) {
			mu.Lock()
			defer mu.Unlock()
			for _, l := range s.Logs {
				logs.Write(l.Data)
			}
			for _, v := range s.Vertexes {
				logs.WriteString(v.Name + "\n" + v.Error + "\n")
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{[]byte(envSecret), []byte("file-secret-")}
	check := func(what string, b []byte) {
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				t.Errorf("a secret leaked into %s", what)
			}
		}
	}
	check("the progress logs", logs.Bytes())
	// Every file under dist, gzip layers and bundles decompressed too.
	filepath.WalkDir(filepath.Join(dir, "dist"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		check(p, b)
		if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
			if plain, err := io.ReadAll(zr); err == nil {
				check(p+" (decompressed)", plain)
			}
		}
		return nil
	})
	if len(res.Images) != 1 {
		t.Fatalf("images %v", res.Images)
	}
	// The LLB: secrets are referred to by name, mounted in the download.
	proj, err := Plan(context.Background(), Options{Dir: dir, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	g, err := llbgen.Generate(llbgen.Env{
		Plan: proj.Plan, Builder: ocispecs.Platform{OS: "linux", Architecture: "amd64"},
		Context: llb.Local("context"), Toolchain: llb.Local("goroot"),
	})
	if err != nil {
		t.Fatal(err)
	}
	def, err := g.Targets[0].Binary.Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mounted := map[string]string{}
	for _, dt := range def.Def {
		check("the LLB definition", dt)
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			t.Fatal(err)
		}
		e := op.GetExec()
		if e == nil {
			continue
		}
		for _, m := range e.Mounts {
			if m.MountType == pb.MountType_SECRET {
				if !strings.Contains(strings.Join(e.Meta.Args, " "), "mod download") {
					t.Errorf("secret %s is mounted into %v, not only the module download", m.SecretOpt.ID, e.Meta.Args)
				}
				mounted[m.SecretOpt.ID] = m.Dest
			}
		}
	}
	if mounted["token"] != "/run/secrets/token" || mounted["netrc"] != "/root/.netrc" {
		t.Errorf("secret mounts %v", mounted)
	}
}

func randHex(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
