package zk_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/proofmesh/proofmesh/zk"
)

// An executor proves an mlp.infer.v1 result and any node verifies it; the
// same proof claimed for another task fails.
func Example() {
	keys, err := zk.DefaultKeys()
	if err != nil {
		panic(err)
	}
	input := []byte(`{"x":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}`)
	output := []byte(`{"scores":[831,-588,-3070,-4723],"class":0}`)
	binding := zk.Binding([]byte("task id"), []byte("executor peer id"))

	prover := zk.NewProver(keys, 1)
	proof, err := prover.Prove(context.Background(), "mlp.infer.v1", input, output, binding)
	if err != nil {
		fmt.Println("prove:", err)
		return
	}
	fmt.Println("proof bytes:", len(proof))
	fmt.Println("verify:", keys.Verify("mlp.infer.v1", proof, input, output, binding))

	other := zk.Binding([]byte("another task id"), []byte("executor peer id"))
	err = keys.Verify("mlp.infer.v1", proof, input, output, other)
	fmt.Println("replayed for another task rejected:", errors.Is(err, zk.ErrProofInvalid))

	pub, _ := zk.PublicInputs("mlp.infer.v1", input, output, binding)
	fmt.Println("public inputs:", len(pub))
	// Output:
	// proof bytes: 164
	// verify: <nil>
	// replayed for another task rejected: true
	// public inputs: 22
}
