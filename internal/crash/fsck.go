package crash

import (
	"github.com/holefs/holefs/blockmap/ext2fs"
	"github.com/holefs/holefs/meta"
)

// fsck runs holefs's fsck (meta.Check) on the image at dir and returns its
// findings that make the image unclean: every error and warning (a
// written extent past EOF would expose old data to a truncate up), and,
// once the image was mounted and closed since the crash (recovered), any
// orphan left, since the mount must have freed them.
func fsck(dir string, recovered bool) ([]string, error) {
	img, err := meta.Open(dir, meta.OpenOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer img.Close()
	var opts meta.CheckOptions
	closeDev, err := ext2fs.SetFsck(img, &opts)
	if err != nil {
		return nil, err
	}
	defer closeDev()
	rep, err := meta.Check(img, opts)
	if err != nil {
		return nil, err
	}
	var probs []string
	for _, f := range rep.Findings {
		if f.Severity != meta.Info || recovered {
			probs = append(probs, f.String())
		}
	}
	return probs, nil
}
