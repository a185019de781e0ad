// Simulation-only stream source: plays a file of beats onto a valid/ready stream, so the
// testbench loads an image with one call instead of one Python step per clock cycle.
//
// On `start` it reads FILE ($readmemh, one WIDTH-bit hex word per line) and then offers
// beats 0 .. count-1 in order. While `stall` is non-zero, each cycle is idle with
// probability stall/256 (a 16-bit LFSR seeded from `seed`). `done` rises after the last
// beat is taken and stays high until the next `start`.
module nnaccel_beat_source #(
    parameter WIDTH = 64,
    parameter DEPTH = 1024,
    parameter FILE = "load_beats.hex"
) (
    input  wire             clk,
    input  wire             rst,
    input  wire             start,
    input  wire [31:0]      count,
    input  wire [7:0]       stall,
    input  wire [15:0]      seed,
    output wire             valid,
    output wire [WIDTH-1:0] payload,
    input  wire             ready,
    output reg              done
);
    reg [WIDTH-1:0] beats [0:DEPTH-1];
    reg [31:0] index;
    reg [31:0] total;
    reg        active;
    reg [15:0] lfsr;
    wire       idle = (stall != 8'd0) && (lfsr[7:0] < stall);

    assign valid = active && !idle;
    assign payload = beats[index[$clog2(DEPTH)-1:0]];

    always @(posedge clk) begin
        if (rst) begin
            active <= 1'b0;
            done <= 1'b0;
        end else if (start) begin
            if (count != 32'd0)
                $readmemh(FILE, beats, 0, count - 1);
            index <= 32'd0;
            total <= count;
            active <= count != 32'd0;
            done <= count == 32'd0;
            lfsr <= seed | 16'd1;
        end else begin
            lfsr <= {lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]};
            if (valid && ready) begin
                index <= index + 32'd1;
                if (index + 32'd1 == total) begin
                    active <= 1'b0;
                    done <= 1'b1;
                end
            end
        end
    end
endmodule
