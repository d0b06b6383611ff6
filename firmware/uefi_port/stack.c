/* cb_call_on_stack(fn, top): run fn() on a stack of our own. Firmware stacks are small (about 128 KiB on
 * EDK2) and MicroPython needs about 0.5 KiB of C stack per Python call level. */
#if defined(__x86_64__)
__asm__(
    "    .text\n    .globl cb_call_on_stack\n    .type cb_call_on_stack, @function\n"
    "cb_call_on_stack:\n"
    "    push %rbp\n    mov %rsp, %rbp\n    mov %rsi, %rsp\n    call *%rdi\n"
    "    mov %rbp, %rsp\n    pop %rbp\n    ret\n");
#elif defined(__aarch64__)
__asm__(
    "    .text\n    .globl cb_call_on_stack\n    .type cb_call_on_stack, %function\n"
    "cb_call_on_stack:\n"
    "    stp x29, x30, [sp, #-16]!\n    mov x29, sp\n    mov sp, x1\n    blr x0\n"
    "    mov sp, x29\n    ldp x29, x30, [sp], #16\n    ret\n");
#elif defined(__riscv)
__asm__(
    "    .text\n    .globl cb_call_on_stack\n    .type cb_call_on_stack, @function\n"
    "cb_call_on_stack:\n"
    "    addi sp, sp, -16\n    sd ra, 8(sp)\n    sd s0, 0(sp)\n    mv s0, sp\n    mv sp, a1\n    jalr a0\n"
    "    mv sp, s0\n    ld ra, 8(sp)\n    ld s0, 0(sp)\n    addi sp, sp, 16\n    ret\n");
#elif defined(__loongarch__)
__asm__(
    "    .text\n    .globl cb_call_on_stack\n    .type cb_call_on_stack, @function\n"
    "cb_call_on_stack:\n"
    "    addi.d $sp, $sp, -16\n    st.d $ra, $sp, 8\n    st.d $fp, $sp, 0\n    move $fp, $sp\n    move $sp, $a1\n"
    "    jirl $ra, $a0, 0\n    move $sp, $fp\n    ld.d $ra, $sp, 8\n    ld.d $fp, $sp, 0\n    addi.d $sp, $sp, 16\n"
    "    jr $ra\n");
#else
#error "cb_call_on_stack: unsupported arch"
#endif
