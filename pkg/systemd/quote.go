package systemd

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/berthbuild/berth/pkg/plan"
)

var (
	// bareRe are words systemd reads the same quoted or not (before
	// escaping % and $).
	bareRe     = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./$-]+$`)
	envNameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sectionRe  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)
	keyRe      = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	nameRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	execPathRe = regexp.MustCompile(`^/[A-Za-z0-9_@+=:,./-]*$`)
)

// checkText refuses what cannot be written on one line of a unit: invalid
// UTF-8 and control characters (newlines above all).
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

// checkValue refuses a directive value that systemd would not read back
// as written: surrounding whitespace is stripped and a trailing backslash
// joins the next line.
func checkValue(what, s string) error {
	if err := checkText(what, s); err != nil {
		return err
	}
	if strings.Trim(s, " \t") != s { // systemd's blanks; controls are refused above
		return fmt.Errorf("%s %q starts or ends with white space", what, s)
	}
	if strings.HasSuffix(s, `\`) {
		return fmt.Errorf("%s %q ends with a backslash, which continues the line", what, s)
	}
	return nil
}

func checkDirective(d Directive) error {
	if !sectionRe.MatchString(d.Section) {
		return fmt.Errorf("invalid section name %q", d.Section)
	}
	if !keyRe.MatchString(d.Name) {
		return fmt.Errorf("invalid directive name %q", d.Name)
	}
	return checkValue(d.Name, d.Value)
}

func checkEnv(e plan.EnvVar) error {
	if !envNameRe.MatchString(e.Name) {
		return fmt.Errorf("invalid environment variable name %q", e.Name)
	}
	return checkText("environment variable "+e.Name, e.Value)
}

// escapeSpecifiers writes % as %%, so systemd does not expand it as a
// specifier (%n, %i, …).
func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// QuoteExecArg quotes one word of an ExecStart= command line: systemd
// expands specifiers (% → %%), unquotes with C escapes (\ → \\, " → \"),
// then substitutes variables ($ → $$). A word that needs none of this is
// left bare.
func QuoteExecArg(s string) string {
	if bareRe.MatchString(s) {
		return strings.NewReplacer("%", "%%", "$", "$$").Replace(s)
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%", "$", "$$").Replace(s) + `"`
}

// execStart is the ExecStart= value: the binary and its arguments.
func execStart(bin string, args []string) (string, error) {
	if !execPathRe.MatchString(bin) || path.Clean(bin) != bin {
		return "", fmt.Errorf("exec path %q must be a clean absolute path of letters, digits and _@+=:,./-", bin)
	}
	words := []string{bin}
	for i, a := range args {
		if err := checkText(fmt.Sprintf("argument %d", i+1), a); err != nil {
			return "", err
		}
		words = append(words, QuoteExecArg(a))
	}
	return strings.Join(words, " "), nil
}

// quoteEnvironment is the Environment= value setting name to value:
// unquoted with C escapes after specifier expansion; $ is not special.
func quoteEnvironment(name, value string) (string, error) {
	if err := checkEnv(plan.EnvVar{Name: name, Value: value}); err != nil {
		return "", err
	}
	w := name + "=" + value
	if bareRe.MatchString(w) {
		return escapeSpecifiers(w), nil
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%").Replace(w) + `"`, nil
}

// quoteEnvFile is a value in an environment file (EnvironmentFile=): bare
// when plain, else double-quoted, where a backslash keeps the next " \ `
// or $ literal. There are no specifiers in the file.
func quoteEnvFile(value string) string {
	if value == "" || (bareRe.MatchString(value) && !strings.Contains(value, "$")) {
		return value
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`", "$", `\$`).Replace(value) + `"`
}

// envFile is the path of the environment file.
func envFile(t plan.Target, o Options) (string, error) {
	dir := o.Project
	if dir == "" {
		dir = t.Service
	}
	if !nameRe.MatchString(dir) || !nameRe.MatchString(t.Service) {
		return "", errors.New("project and service names must be plain file names for /etc/<project>/<service>.env")
	}
	return "/etc/" + dir + "/" + t.Service + ".env", nil
}
