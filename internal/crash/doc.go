// Package crash checks holefs images for crash consistency by recording
// a workload's device I/O and rebuilding, mounting and checking every
// state a crash could leave.
package crash
