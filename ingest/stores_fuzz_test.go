package ingest_test

import (
	"bytes"
	"testing"

	"github.com/blockreport/blockreport/ingest"
)

// FuzzDecodeStore: any document, under any key and format, decodes without
// panicking, and every reference it yields passes Validate.
func FuzzDecodeStore(f *testing.F) {
	for _, s := range []string{agentsNET, agentsJS, botbuilderNET, teamsFxNET, "[" + agentsNET + "," + agentsJS + "]",
		`{"value":[{"PartitionKey":"UserData","RowKey":"r","AadId":"r"}]}`, `{"aadObjectId":"x","conversationId":"a:1"}`,
		`{"id":"a","realId":"proactive/conversations/a:1","document":` + agentsJS + `}`, "{\n\"k\": [1,2]\n}", `{"a":{"b":{"c":{}}}}`} {
		f.Add([]byte(s), "proactive/conversations/a:1", "")
	}
	f.Fuzz(func(t *testing.T, doc []byte, key, format string) {
		for fd, err := range ingest.DecodeStore(bytes.NewReader(doc), key, ingest.Format(format), ingest.Defaults{TenantID: "t-1"}) {
			if err != nil {
				t.Fatalf("read error from a bytes.Reader: %v", err)
			}
			if fd.Reason == "" {
				if err := ingest.Validate(fd.Ref); err != nil {
					t.Fatalf("yielded an invalid reference: %v", err)
				}
			}
		}
	})
}
