package main

// The generated monorepo: N services in one Go module, each a main package
// under cmd/<service> with a package of its own under internal/<service>,
// all sharing internal/common. Every service pulls in a different slice of
// the standard library, as real services do, so a cold build compiles a
// realistic amount of it.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/berthbuild/berth/pkg/dockerfile"
)

const (
	modulePath = "example.com/benchshop"
	goVersion  = "1.26.8"
	version    = "1.0.0"
)

// extraDeps are the real modules -deps adds, at versions the Go module
// proxy serves.
var extraDeps = [][2]string{
	{"github.com/google/uuid", "v1.6.0"},
	{"golang.org/x/text", "v0.42.0"},
}

type project struct {
	Dir      string // module root and berth config dir
	Services []string
	Deps     bool
	// Flags are the go build flags berth's plan gives every target of
	// the project: the floor and the hand-written Dockerfiles build with
	// them, so all three paths build the same binaries.
	Flags   []string
	changes int
}

func serviceName(i int) string  { return fmt.Sprintf("svc-%02d", i+1) }
func pkgName(svc string) string { return strings.ReplaceAll(svc, "-", "") }

// stdGroups are the extra standard packages a service uses, by index, each
// with a statement that uses them.
var stdGroups = []struct {
	imports []string
	use     string
}{
	{[]string{"encoding/xml", "html/template"}, `b, _ := xml.Marshal(struct{ A string }{s})
	t := template.Must(template.New("x").Parse("<p>{{.}}</p>"))
	var w strings.Builder
	_ = t.Execute(&w, string(b))
	return w.String()`},
	{[]string{"compress/gzip", "archive/zip", "archive/tar", "bytes"}, `var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	z := zip.NewWriter(&buf)
	_ = z.Close()
	tw := tar.NewWriter(&buf)
	_ = tw.Close()
	return fmt.Sprint(buf.Len())`},
	{[]string{"database/sql", "encoding/csv", "bytes"}, `var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{s, fmt.Sprint(sql.ErrNoRows)})
	w.Flush()
	return buf.String()`},
	{[]string{"image", "image/color", "image/png", "image/jpeg", "image/gif", "bytes"}, `img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.RGBA{R: byte(len(s))})
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	_ = jpeg.Encode(&buf, img, nil)
	_ = gif.Encode(&buf, img, nil)
	return fmt.Sprint(buf.Len())`},
	{[]string{"net/smtp", "net/mail", "mime/multipart", "bytes"}, `a, _ := mail.ParseAddress(s + " <x@example.com>")
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	_ = w.Close()
	_ = smtp.PlainAuth("", "u", "p", "localhost")
	return fmt.Sprint(a, buf.Len())`},
	{[]string{"go/parser", "go/format", "go/token", "go/ast"}, `fs := token.NewFileSet()
	f, err := parser.ParseFile(fs, "x.go", "package x\nvar V = "+fmt.Sprintf("%q", s), 0)
	if err != nil {
		return err.Error()
	}
	var w strings.Builder
	_ = format.Node(&w, fs, f)
	ast.Inspect(f, func(ast.Node) bool { return true })
	return w.String()`},
	{[]string{"crypto/ecdsa", "crypto/ed25519", "crypto/elliptic", "crypto/rand", "crypto/x509", "encoding/pem"}, `k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return fmt.Sprint(len(b), len(ed25519.Sign(priv, []byte(s))))`},
	{[]string{"regexp", "text/template", "encoding/gob", "math/big", "bytes"}, `re := regexp.MustCompile("[a-z]+([0-9]+)")
	var buf bytes.Buffer
	_ = gob.NewEncoder(&buf).Encode(re.FindAllString(s, -1))
	t := template.Must(template.New("x").Parse("{{.}}"))
	_ = t.Execute(&buf, new(big.Int).Exp(big.NewInt(3), big.NewInt(99), nil))
	return buf.String()`},
}

// generate writes the module, berth.cue, the .dockerignore and one
// hand-written Dockerfile per service (outside the module, in dfDir).
func (p *project) generate(n int, dfDir, builderRef string) error {
	if err := os.RemoveAll(p.Dir); err != nil {
		return err
	}
	p.Services = nil
	for i := 0; i < n; i++ {
		p.Services = append(p.Services, serviceName(i))
	}
	files := map[string]string{
		"go.mod":                    p.goMod(),
		".dockerignore":             "dist\n.git\n",
		"berth.cue":                 p.berthCUE(),
		"internal/common/common.go": p.common(),
	}
	for i, s := range p.Services {
		files["cmd/"+s+"/main.go"] = p.main(i, s)
		files["cmd/"+s+"/mark.go"] = mark(0)
		files["internal/"+pkgName(s)+"/"+pkgName(s)+".go"] = p.servicePkg(i, s)
	}
	for name, body := range files {
		if err := writeFile(filepath.Join(p.Dir, name), body); err != nil {
			return err
		}
	}
	if p.Deps {
		// go.sum, from the module proxy.
		cmd := exec.Command("go", "mod", "tidy")
		cmd.Dir = p.Dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go mod tidy in the generated module: %v\n%s", err, out)
		}
	}
	flags, err := planFlags(p.Dir)
	if err != nil {
		return err
	}
	p.Flags = flags
	if err := os.RemoveAll(dfDir); err != nil {
		return err
	}
	for _, s := range p.Services {
		if err := writeFile(filepath.Join(dfDir, s, "Dockerfile"), p.dockerfile(s, builderRef)); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(p, body string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(body), 0o644)
}

// changed is the service whose source the "one service changed" case
// edits: one in the middle.
func (p *project) changed() string { return p.Services[len(p.Services)/2] }

// change edits the changed service's source so that it compiles to a
// different binary, each time differently.
func (p *project) change() error {
	p.changes++
	return writeFile(filepath.Join(p.Dir, "cmd", p.changed(), "mark.go"), mark(p.changes))
}

func mark(n int) string {
	return fmt.Sprintf("package main\n\n// buildMark is edited by the benchmark's \"one service changed\" case.\nconst buildMark = \"change-%d\"\n", n)
}

func (p *project) goMod() string {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s\n\ngo %s\n", modulePath, goVersion)
	if p.Deps {
		b.WriteString("\nrequire (\n")
		for _, d := range extraDeps {
			fmt.Fprintf(&b, "\t%s %s\n", d[0], d[1])
		}
		b.WriteString(")\n")
	}
	return b.String()
}

func (p *project) berthCUE() string {
	var b strings.Builder
	fmt.Fprintf(&b, "package berth\n\nproject: \"benchshop\"\nversion: %q\ngo: version: %q\n\n", version, goVersion)
	b.WriteString("defaults: {\n\tplatforms: [\"linux/amd64\", \"linux/arm64\"]\n\t// scratch, as the hand-written Dockerfile, so image bytes compare the same content.\n\tbase: \"scratch\"\n\tlimits: {cpu: 1, memory: \"128Mi\"}\n}\n\nservices: {\n")
	for i, s := range p.Services {
		fmt.Fprintf(&b, "\t%q: {\n\t\tmain: \"./cmd/%s\"\n\t\targs: [\"--listen=:%d\"]\n\t\tports: [%d]\n\t}\n", s, s, 8000+i, 8000+i)
	}
	b.WriteString("}\n")
	return b.String()
}

func (p *project) common() string {
	var b strings.Builder
	b.WriteString(`// Package common is shared by every service: HTTP server, JSON helpers,
// hashing, structured logs.
package common

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
`)
	if p.Deps {
		b.WriteString("\n\t\"github.com/google/uuid\"\n\t\"golang.org/x/text/cases\"\n\t\"golang.org/x/text/language\"\n")
	}
	b.WriteString(`)

// Server serves a service's routes with logging and metrics.
type Server struct {
	Name string
	mux  *http.ServeMux
	log  *slog.Logger
	mu   sync.Mutex
	hits map[string]int
}

func New(name string) *Server {
	return &Server{Name: name, mux: http.NewServeMux(), log: slog.New(slog.NewJSONHandler(os.Stderr, nil)), hits: map[string]int{}}
}

// Handle registers a JSON endpoint.
func (s *Server) Handle(path string, f func(ctx context.Context, in map[string]any) (any, error)) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[path]++
		s.mu.Unlock()
		var in map[string]any
		if r.Body != nil {
			_ = json.NewDecoder(r.Body).Decode(&in)
		}
		out, err := f(r.Context(), in)
		if err != nil {
			WriteJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, out)
	})
}

// Run serves until the listener fails.
func (s *Server) Run(addr string) error {
	srv := &http.Server{Addr: addr, Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("listening", "service", s.Name, "addr", addr, "id", ID())
	err := srv.ListenAndServe()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Hash is a hex SHA-256.
func Hash(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
`)
	if p.Deps {
		b.WriteString(`
// ID is a request id.
func ID() string { return uuid.NewString() }

// Title cases a name.
func Title(s string) string { return cases.Title(language.English).String(s) }
`)
	} else {
		b.WriteString(`
// ID is a request id.
func ID() string { return Hash([]byte(time.Now().String()))[:16] }

// Title cases a name.
func Title(s string) string { return s }
`)
	}
	return b.String()
}

// servicePkg is a service's own package: a stdlib group and a set of
// typed endpoints, enough code for the compiler to spend real time on.
func (p *project) servicePkg(i int, svc string) string {
	g := stdGroups[i%len(stdGroups)]
	imports := map[string]bool{"context": true, "encoding/json": true, "fmt": true, "strings": true, "sort": true, modulePath + "/internal/common": true}
	for _, im := range g.imports {
		imports[im] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Package %s holds the endpoints of %s.\npackage %s\n\nimport (\n", pkgName(svc), svc, pkgName(svc))
	for _, im := range sortedSet(imports) {
		fmt.Fprintf(&b, "\t%q\n", im)
	}
	b.WriteString(")\n\n")
	fmt.Fprintf(&b, "// Render uses the service's part of the standard library.\nfunc Render(s string) string {\n\t%s\n}\n\n", g.use)
	const endpoints = 40
	for e := 0; e < endpoints; e++ {
		fmt.Fprintf(&b, `type Req%[1]d struct {
	ID    string            `+"`json:\"id\"`"+`
	Count int               `+"`json:\"count\"`"+`
	Tags  []string          `+"`json:\"tags\"`"+`
	Attrs map[string]string `+"`json:\"attrs\"`"+`
}

type Resp%[1]d struct {
	ID     string   `+"`json:\"id\"`"+`
	Sum    int      `+"`json:\"sum\"`"+`
	Hash   string   `+"`json:\"hash\"`"+`
	Sorted []string `+"`json:\"sorted\"`"+`
}

func Endpoint%[1]d(ctx context.Context, in map[string]any) (any, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	var r Req%[1]d
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("endpoint %[1]d: %%w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tags := append([]string(nil), r.Tags...)
	sort.Strings(tags)
	sum := r.Count * %[2]d
	for k, v := range r.Attrs {
		sum += len(k) * len(v) %% %[3]d
	}
	return Resp%[1]d{ID: common.Title(r.ID), Sum: sum, Hash: common.Hash([]byte(strings.Join(tags, ","))), Sorted: tags}, nil
}

`, e, e+i+2, e+7)
	}
	fmt.Fprintf(&b, "// Register adds every endpoint to s.\nfunc Register(s *common.Server) {\n")
	for e := 0; e < endpoints; e++ {
		fmt.Fprintf(&b, "\ts.Handle(\"/v1/e%d\", Endpoint%d)\n", e, e)
	}
	b.WriteString("\ts.Handle(\"/v1/render\", func(_ context.Context, in map[string]any) (any, error) { return Render(fmt.Sprint(in)), nil })\n}\n")
	return b.String()
}

func (p *project) main(i int, svc string) string {
	return fmt.Sprintf(`// Command %[1]s is a generated benchmark service.
package main

import (
	"flag"
	"log"

	"%[2]s/internal/common"
	"%[2]s/internal/%[3]s"
)

func main() {
	listen := flag.String("listen", ":%[4]d", "address")
	flag.Parse()
	s := common.New("%[1]s " + buildMark)
	%[3]s.Register(s)
	log.Fatal(s.Run(*listen))
}
`, svc, modulePath, pkgName(svc), 8000+i)
}

// dockerfile is what a user writes by hand for one service: the
// canonical multi-stage build with cache mounts.
func (p *project) dockerfile(svc, builder string) string {
	mods := "go.mod"
	if p.Deps {
		mods = "go.mod go.sum"
	}
	return fmt.Sprintf(`FROM --platform=$BUILDPLATFORM %[1]s AS build
WORKDIR /src
COPY %[2]s ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build %[4]s -o /out/%[3]s ./cmd/%[3]s

FROM scratch
COPY --from=build /out/%[3]s /%[3]s
ENTRYPOINT ["/%[3]s"]
`, builder, mods, svc, dockerfile.ShellJoin(p.Flags))
}

// planFlags are the go build flags of the targets of berth's plan for the
// project in dir, which must be the same for all (one go build per
// platform builds all services on the floor).
func planFlags(dir string) ([]string, error) {
	proj, err := planProject(context.Background(), dir)
	if err != nil {
		return nil, fmt.Errorf("planning the generated project: %w", err)
	}
	var flags []string
	for i, t := range proj.Plan.Targets {
		if i == 0 {
			flags = t.BuildFlags
		} else if !slices.Equal(flags, t.BuildFlags) {
			return nil, fmt.Errorf("the plan's targets have different go build flags: %q (%s %s) and %q (%s %s)",
				flags, proj.Plan.Targets[0].Service, proj.Plan.Targets[0].Platform, t.BuildFlags, t.Service, t.Platform)
		}
	}
	if len(flags) == 0 {
		return nil, fmt.Errorf("the plan of the generated project has no targets")
	}
	return flags, nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
