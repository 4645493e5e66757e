# Stack: when the sections are planes of one 3-D stack, their repaired planes as one repaired 3-D
# stack (planes whose planning failed, or not in the table, as they are in the input).


rule assemble_stack:
    input:
        receipts=repaired_receipts,
    output:
        STACK.stack_receipt,
    log:
        STACK.log("assemble_stack"),
    conda:
        CONDA_ENV
    params:
        stack=ONE_STACK,
        store=STACK.stack_repaired,
    shell:
        "cytopaint assemble --stack {params.stack:q} --receipts {input.receipts:q} --out {params.store:q}"
        " --receipt {output:q} --replace 2> {log:q}"
