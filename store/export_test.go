package store

// SetChunkSize makes im write every n references, so that tests can put
// duplicates in different chunks.
func SetChunkSize(im *Import, n int) { im.size = n }
