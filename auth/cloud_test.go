package auth

import (
	"strings"
	"testing"
)

// TestCheckTokenURL: the app secret goes over https, or plain http only to
// a loopback host; New refuses any other token URL.
func TestCheckTokenURL(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token", true},
		{"https://login.example:8443/t", true},
		{"HTTPS://login.example/t", true},
		{"http://127.0.0.1:1234/token", true},
		{"http://127.3.4.5/token", true},
		{"http://[::1]:80/token", true},
		{"http://localhost:9/token", true},
		{"http://LocalHost/token", true},
		{"http://any-host/token", false},
		{"http://login.microsoftonline.com/t", false},
		{"http://10.0.0.1/token", false},
		{"http://[::ffff:10.0.0.1]/token", false},
		{"http://localhost.evil.example/token", false},
		{"http://127.0.0.1.evil.example/token", false},
		{"ftp://127.0.0.1/token", false},
		{"https://user:pw@login.example/t", false},
		{"login.example/token", false},
		{"/token", false},
		{"", false},
		{"https://%zz", false},
	} {
		err := CheckTokenURL(tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckTokenURL(%q) = %v, want ok %v", tt.url, err, tt.ok)
		}
		_, err = New(Config{AppID: "a", Secret: testSecret, TokenURL: tt.url})
		if tt.url != "" && (err == nil) != tt.ok {
			t.Errorf("New with token URL %q: %v, want ok %v", tt.url, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), testSecret) {
			t.Errorf("error carries the secret: %v", err)
		}
	}
}
