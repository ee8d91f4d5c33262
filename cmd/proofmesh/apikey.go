package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/proofmesh/proofmesh/node/api"
)

// maxExpiryDays is the longest --expires given in days.
const maxExpiryDays = 36500

// parseExpiry accepts Go durations and whole days ("30d").
func parseExpiry(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("--expires %q: want a positive number of days or a duration", s)
		}
		if n > maxExpiryDays {
			// Beyond it the duration would overflow (at 106,752 days)
			// and a key could expire in minutes.
			return 0, fmt.Errorf("--expires %q: at most %dd (100 years); leave --expires out for a key that does not expire", s, maxExpiryDays)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires %q: want a positive number of days (30d) or a duration (12h)", s)
	}
	return d, nil
}

func apikeyCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "apikey",
		Short: "Manage API keys for submitters (needs the node's admin token)",
		Long: `API keys let a gateway node serve many submitters without sharing its admin
token. Scopes: read (GET routes), submit (also POST tasks and proof
verification), admin (everything, including keys and the audit log). A key
is shown once at creation; the node keeps only its SHA-256.`,
	}
	var cf clientFlags
	var scope, expires, label string
	create := &cobra.Command{
		Use:   "create --scope read|submit|admin [--expires 30d] [--label NAME]",
		Short: "Create a key and print it (once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			req := api.APIKeyRequest{Scope: scope, Label: label}
			if expires != "" {
				d, err := parseExpiry(expires)
				if err != nil {
					return err
				}
				req.ExpiresIn = d.String()
			}
			var k api.APIKeyCreated
			if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/apikeys", req, &k); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Key)
			fmt.Fprintf(cmd.ErrOrStderr(), "created %s (scope %s); the key above is shown only now\n", k.Prefix, k.Scope)
			return nil
		},
	}
	cf.add(create)
	create.Flags().StringVar(&scope, "scope", "submit", "read, submit or admin")
	create.Flags().StringVar(&expires, "expires", "", "lifetime, e.g. 30d or 12h (default: never)")
	create.Flags().StringVar(&label, "label", "", "a name to recognise the key by")

	var lf clientFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List keys by prefix",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.client()
			if err != nil {
				return err
			}
			var ks []api.APIKeyView
			if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/apikeys", nil, &ks); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PREFIX\tSCOPE\tLABEL\tCREATED\tEXPIRES\tREVOKED")
			at := func(t *time.Time) string {
				if t == nil {
					return "-"
				}
				return t.Local().Format(time.DateTime)
			}
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Prefix, k.Scope, k.Label, k.Created.Local().Format(time.DateTime), at(k.Expires), at(k.Revoked))
			}
			return tw.Flush()
		},
	}
	lf.add(list)

	var rf clientFlags
	revoke := &cobra.Command{
		Use:   "revoke PREFIX",
		Short: "Revoke a key at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client()
			if err != nil {
				return err
			}
			var k api.APIKeyView
			if err := c.do(cmd.Context(), http.MethodDelete, "/api/v1/apikeys/"+args[0], nil, &k); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", k.Prefix)
			return nil
		},
	}
	rf.add(revoke)
	root.AddCommand(create, list, revoke)
	return root
}
