package dockerfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	// plainRe are words that mean the same quoted or not, to a shell and
	// to the Dockerfile's own word splitting.
	plainRe    = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)
	fileNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	portRe     = regexp.MustCompile(`^([1-9][0-9]{0,4})/(tcp|udp)$`)
	// imageRe is an image reference as one word: no white space, no $
	// (FROM expands variables), no quotes.
	imageRe   = regexp.MustCompile(`^[a-z0-9][A-Za-z0-9._:/@+-]*$`)
	pinnedRe  = regexp.MustCompile(`^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?@sha256:[a-f0-9]{64}$`)
	goVerRe   = regexp.MustCompile(`^[0-9][0-9A-Za-z.]*$`)
	cleanPath = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,.-][A-Za-z0-9_@%+=:,./-]*$`)
)

// checkText refuses what cannot be written on one line: invalid UTF-8 and
// control characters (newlines above all). The schema already refuses
// them; this keeps a value that slipped through from adding a line.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, s)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q holds control character %U", what, s, r)
		}
	}
	return nil
}

// shellQuote quotes s as one word of a POSIX shell command line (RUN in
// shell form): bare when plain, else in single quotes.
func shellQuote(s string) string {
	if plainRe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin quotes words for a POSIX shell, each bare when it means the
// same unquoted, and joins them with spaces.
func ShellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = shellQuote(w)
	}
	return strings.Join(q, " ")
}

// word quotes s as a value of ENV or LABEL, which the Dockerfile splits
// and expands itself: bare when plain, else in double quotes with \, "
// and $ escaped.
func word(s string) string {
	if plainRe.MatchString(s) {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`).Replace(s) + `"`
}

// jsonArray is the exec (JSON) form of ENTRYPOINT and CMD.
func jsonArray(args []string) (string, error) {
	if args == nil {
		args = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(args); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
